"""The read-only GraphQL endpoint, ``POST /api/graphql``.

``router`` is the FastAPI router; ``schema`` holds the types and resolvers, ``limits``
what a query may cost. The endpoint answers with the same authentication, ownership
rules, allowlists, problem details, rate limit and body limit as the REST API.
"""

from bastion.api.graphql.router import router

__all__ = ["router"]
