"""Commands of the qslm CLI that live in their own modules."""
