"""Other vendors' wire formats over the native path (API.md §8): each surface owns its
request, response, stream and error shapes, and translates to and from /v1/generate."""
