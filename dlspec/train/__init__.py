"""Training: a spec's `loss`, `optimizer` and `schedule` sections made real, and the loop.

Layout: `losses` (the loss module, L1/L2 penalties, loss-vs-output checks), `optim` (the
torch optimizer with per-pattern parameter groups), `schedules` (the learning-rate
schedule, stepped per epoch or per batch). Importing this package imports no torch.
"""
