"""Verification shared by every stage and by eval: answers, grading, safe arithmetic, equation keys, dedup."""
