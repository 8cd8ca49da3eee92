"""Generation: datatrove's InferenceRunner plumbing, the request path and the local server backends."""
