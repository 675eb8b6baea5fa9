"""`envspec test`: running the spec's tests as Jobs, their outcomes, names and reports."""
