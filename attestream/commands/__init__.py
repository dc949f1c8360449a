"""One module per `attestream` command group, each a thin layer over a tested library."""
