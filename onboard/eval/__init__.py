"""The evaluation harness: a policy (or the scripted expert) on N seeded simulated episodes, serially or in worker
processes, with success rates, Wilson intervals, videos and reports (`onboard eval`, `onboard sim expert`,
`onboard train --eval_every`).

Importing it registers the scripted expert as the policy kind "expert" in ``robot.policy_loader``'s registry
(``onboard.eval.factories.EXPERT``)."""

from onboard.eval.factories import EXPERT
from robot.policy_loader import register_policy_kind

register_policy_kind(EXPERT)
