"""The check loop: the scheduler's grid and beat, a round's plan, the runner, judging."""
