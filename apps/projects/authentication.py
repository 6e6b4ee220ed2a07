"""DRF authentication by API token: `Authorization: Bearer <key>` or `Token <key>`."""

from rest_framework import authentication, exceptions

from apps.projects import services


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode(errors="replace").lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("invalid token header: expected '<Bearer|Token> <key>'")
        user = services.authenticate_token(header[1].decode(errors="replace"))
        if user is None:
            raise exceptions.AuthenticationFailed("invalid or expired API token")
        return user, None

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
