"""The evaluation harness: a policy (or the scripted expert) on N seeded simulated episodes, serially or in worker
processes, with success rates, Wilson intervals, videos and reports (`onboard eval`, `onboard sim expert`,
`onboard train --eval_every`)."""
