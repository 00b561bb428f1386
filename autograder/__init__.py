"""An autograder for the activation-function part of a CMU 11-785 mytorch homework."""

__version__ = "0.1.0"
