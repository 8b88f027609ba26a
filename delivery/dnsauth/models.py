"""The latest DNS check of each subject: a sending identity, the bounce domain, the tracking domain."""

from __future__ import annotations

from django.db import models

from delivery.models import SendingIdentity


class DomainCheck(models.Model):
    class Subject(models.TextChoices):
        IDENTITY = "identity", "Sending identity"
        BOUNCE = "bounce", "Bounce domain"
        TRACKING = "tracking", "Tracking domain"

    subject = models.CharField(max_length=10, choices=Subject.choices)
    domain = models.CharField(max_length=253)
    identity = models.OneToOneField(
        SendingIdentity, null=True, blank=True, on_delete=models.CASCADE, related_name="dns_check"
    )
    # pass, fail or unknown (DNS did not answer); see checks.overall
    status = models.CharField(max_length=10)
    # [checks.Item.as_dict(), ...] in checklist order
    items = models.JSONField(default=list)
    checked_at = models.DateTimeField()

    class Meta:
        constraints = [
            # one row per bounce or tracking domain; identities are unique through the one-to-one
            models.UniqueConstraint(
                fields=["subject", "domain"],
                condition=~models.Q(subject="identity"),
                name="dnsauth_one_check_per_domain",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject} {self.domain}: {self.status}"

    @property
    def failures(self) -> list[dict[str, str]]:
        return [i for i in self.items if i.get("status") == "fail"]
