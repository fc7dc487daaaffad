"""Stored responses of OpenAI's Responses API: each user's responses, chained by
``previous_response_id`` into conversations."""
