"""The command line: every click command, thin (parse, call one stage function, print).

`main.py` holds the group and the entry point; `options.py` the shared options; one
module per group of commands. No module outside this package imports click.
"""
