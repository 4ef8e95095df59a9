"""rubrix as a verifiers judge plugin, found by its id: ``judges = [{id = "rubrix-judge", ...}]``.

verifiers (>= 0.4, ``verifiers.v1``) resolves a judge id by importing the module of that name
(``-`` becomes ``_``) and taking the one ``Judge`` subclass its ``__all__`` exports. This top-level
package ships in rubrix's wheel for that lookup; the judge itself is
:class:`rubrix.integrations.verifiers.RubrixJudge` (configured like verifiers' own judges:
``model``, ``base_url``, ``api_key_var``, ``headers``, ``sampling``; plus ``rubric``).
"""

from rubrix.integrations.verifiers import RubrixJudge, RubrixJudgeConfig

__all__ = ["RubrixJudge", "RubrixJudgeConfig"]
