"""The fault suite (see README, Reliability)."""
