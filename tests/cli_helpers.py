"""Running the CLI in-process from tests."""

from unsup.cli import main


def run(capsys, *argv):
    """``unsup ARGV...`` -> (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
