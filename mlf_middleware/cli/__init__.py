"""The ``mlf-middleware`` command line."""
