"""``manage.py interop_access USERNAME TOPIC…``: a user, a token, topic rights.

Creates the user (if missing) and its rest_framework token, creates each
topic (if missing) and grants the user ``can_produce`` and ``can_consume``
on it. Prints the token key on the last line.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    """Give a (new) user a token and produce/consume rights on topics."""

    help = "Create a user with a token that may produce to and consume topics."

    def add_arguments(self, parser):
        """Declare USERNAME and TOPIC arguments."""
        parser.add_argument("username")
        parser.add_argument("topics", nargs="+")

    def handle(self, username, topics, **options):
        """Create what is missing and print the token key."""
        from dasf_broker.models import BrokerTopic
        from guardian.shortcuts import assign_perm
        from rest_framework.authtoken.models import Token

        if not username.isidentifier():
            raise CommandError(
                f"username {username!r} must be letters, digits and underscores"
            )
        user, _ = get_user_model().objects.get_or_create(username=username)
        token, _ = Token.objects.get_or_create(user=user)
        for slug in topics:
            topic, _ = BrokerTopic.objects.get_or_create(slug=slug)
            assign_perm("can_produce", user, topic)
            assign_perm("can_consume", user, topic)
        self.stdout.write(token.key)
