"""Command-line front ends: parse, call the library, print (run by scripts/*.py and the qtrain-* commands)."""
