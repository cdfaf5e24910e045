"""Play: when the next token sounds (the pulse), which notes and how loud (voicing), and the
ledger that ends every note it starts."""
