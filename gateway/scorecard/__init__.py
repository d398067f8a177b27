"""The scorecard: how often correlation named the root causes people confirmed."""
