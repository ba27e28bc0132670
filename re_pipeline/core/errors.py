"""The one exception type the command line turns into a clean one-line error."""


class PipelineError(Exception):
    """A user-facing error: bad input, bad config, missing file. Printed without a traceback."""
