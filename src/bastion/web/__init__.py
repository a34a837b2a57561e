"""The storefront: one page and its static files, no build step."""
