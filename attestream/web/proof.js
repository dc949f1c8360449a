// Re-check a proof file (GET /v1/prove) in the browser: the entry's leaf hash, its RFC 9162
// inclusion proof up to the root of the checkpoint note the file carries. The note's
// signature is NOT checked here (that needs the log's verifier key: `forensic verify-proof
// --key`); the badge says so.
"use strict";

async function sha256(...parts) {
  const joined = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { joined.set(p, at); at += p.length; }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", joined));
}

const fromHex = (hex) => new Uint8Array(hex.match(/../g).map((b) => parseInt(b, 16)));
const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

// RFC 6962 2.1: leaf hash = SHA-256(0x00 || entry), node hash = SHA-256(0x01 || left || right).
const leafHash = (entry) => sha256(new Uint8Array([0]), entry);
const nodeHash = (left, right) => sha256(new Uint8Array([1]), left, right);

// RFC 9162 2.1.3.2: the root an inclusion proof yields for leaf `index` of a tree of `size`.
async function rootFromInclusion(index, size, leaf, path) {
  if (index >= size) throw new Error(`leaf ${index} is not in a tree of ${size}`);
  let fn = index, sn = size - 1, r = leaf;                        // steps 2-3
  for (const p of path) {                                         // step 4
    if (sn === 0) throw new Error("the inclusion proof is too long");
    if (fn % 2 === 1 || fn === sn) {                              // 4a
      r = await nodeHash(p, r);
      if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {                                                      // 4b
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new Error("the inclusion proof is too short");   // step 5
  return r;
}

// c2sp.org/tlog-checkpoint: origin, tree size, base64 root, then extensions, a blank line and
// the signature lines.
function parseCheckpoint(note) {
  const [origin, size, root] = note.split("\n");
  if (!/^(0|[1-9][0-9]*)$/.test(size || "")) throw new Error("the checkpoint has no tree size");
  return { origin, size: Number(size), root: fromBase64(root) };
}

// Resolves to {ok, detail}: ok when the file's entry is the decision's entry (its leaf hash)
// and its inclusion proof reaches the checkpoint's root.
async function checkProofFile(proof, expectedLeafHex) {
  try {
    const checkpoint = parseCheckpoint(proof.checkpoint);
    if (checkpoint.size !== proof.tree_size) {
      return { ok: false, detail: `the checkpoint is of size ${checkpoint.size}, the proof of ${proof.tree_size}` };
    }
    const leaf = await leafHash(fromBase64(proof.entry));
    if (toHex(leaf) !== expectedLeafHex) {
      return { ok: false, detail: `the proven entry's leaf hash ${toHex(leaf)} is not the decision's` };
    }
    const root = await rootFromInclusion(proof.seq, proof.tree_size, leaf, proof.inclusion_proof.map(fromHex));
    if (toHex(root) !== toHex(checkpoint.root)) {
      return { ok: false, detail: `calculated root ${toHex(root)}, checkpoint root ${toHex(checkpoint.root)}` };
    }
    return { ok: true, detail: `leaf ${proof.seq} of chain ${proof.chain} is included in the ` +
      `checkpoint "${checkpoint.origin}" of size ${checkpoint.size}, root ${toHex(root)}` };
  } catch (err) {
    return { ok: false, detail: String(err.message || err) };
  }
}
