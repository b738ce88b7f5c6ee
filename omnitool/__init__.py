"""OmniTool: an internal tools portal whose tools and grants travel like code."""
