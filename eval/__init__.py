"""mathforge.eval: benchmark runs (sampling through the generation layer, graded by mathforge.verify) and metrics."""
