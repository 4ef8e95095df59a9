"""rubrix: explicit, checkable rubrics turned into rewards you can read and trust.

The Python API mirrors the CLI with the same defaults::

    import rubrix
    rubric = rubrix.load_rubric("helpfulness")
    scorer = rubrix.Scorer(rubric, "embedded")          # or "hf:PATH", "openai:MODEL"
    results = scorer.score([{"id": "1", "prompt": "...", "response": "..."}])
"""

from ._version import __version__  # noqa: E402
from .rubric import Criterion, Rubric, load_rubric  # noqa: E402


def get_judge(spec=None, **options):
    """A judge from a spec: ``embedded`` (default), ``embedded:0.5b``, ``hf:PATH``, ``openai:MODEL``."""
    from .judges import get_judge as _get

    return _get(spec, **options)


def __getattr__(name):
    if name == "Scorer":
        from .scoring import Scorer

        return Scorer
    if name == "SampleResult":
        from .scoring import SampleResult

        return SampleResult
    raise AttributeError(name)


__all__ = ["Criterion", "Rubric", "load_rubric", "get_judge", "Scorer", "SampleResult", "__version__"]
