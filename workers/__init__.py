"""Background work on RQ: processing deliveries, running actions, and the scheduler loop."""
