"""Instagram direct messages and comment private replies, through the Instagram API with
Instagram Login (``graph.instagram.com``): ``adapter.py`` sends, ``webhook.py`` reads."""
