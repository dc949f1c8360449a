"""What every attestream package shares and nothing of attestream's own: waiting for a
condition with a deadline, and starting, watching and stopping child processes."""
