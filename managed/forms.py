"""The admin's forms for managed mode: a JobNimbus key whose secret is written and never read back, and the "one
user or one group" (or client) choice the models' constraints demand, refused with words instead of a constraint
name."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.utils import timezone

from managed import vault
from managed.models import JobNimbusKey, KeyAssignment, RateLimit

SECRET_FORMAT = re.compile(r"[A-Za-z0-9_-]{16,256}")


class JobNimbusKeyForm(forms.ModelForm[JobNimbusKey]):
    """Adds or edits a key; the secret is encrypted on save and never rendered, not even back into a refused form."""

    secret = forms.CharField(
        label="JobNimbus API key",
        required=False,  # required on add only: clean_secret says so, as the form is shared by add and change
        strip=True,
        # "new-password": browsers ignore "off" on password inputs and would fill in the staff's own saved password.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password", "size": 48}),
    )

    class Meta:
        model = JobNimbusKey
        fields = ("instance", "label", "secret", "enabled")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        configured = list(settings.JOBNIMBUS_INSTANCES)
        current = self.instance.instance if self.instance.pk else ""
        if current and current not in configured:  # an instance dropped from the settings: its key stays editable
            configured.append(current)
        self.fields["instance"] = forms.ChoiceField(
            choices=[(name, name) for name in configured], help_text=JobNimbusKey._meta.get_field("instance").help_text
        )
        if self.instance.pk:
            self.fields[
                "secret"
            ].help_text = f"Leave blank to keep the current key (…{self.instance.hint}); type a new one to replace it."
        else:
            self.fields["secret"].help_text = "The key from JobNimbus (Settings → API); stored encrypted."

    def clean_secret(self) -> str:
        secret: str = self.cleaned_data.get("secret") or ""
        if not secret:
            if not self.instance.pk:
                raise ValidationError("Type the JobNimbus API key.", code="required")
            return ""
        if not SECRET_FORMAT.fullmatch(secret):
            raise ValidationError(
                "A JobNimbus API key is 16 to 256 letters, digits, '_' or '-'.", code="invalid"
            )  # the message never echoes the value
        try:
            vault.cipher()
        except ImproperlyConfigured as exc:  # say so on the form rather than fail the request after validation
            raise ValidationError(str(exc), code="no_encryption_key") from None
        return secret

    def save(self, commit: bool = True) -> JobNimbusKey:
        secret = self.cleaned_data.get("secret") or ""
        if secret and not self._holds(secret):
            if self.instance.pk:
                self.instance.replaced_at = timezone.now()
            vault.store(self.instance, secret)
        return super().save(commit)

    def _holds(self, secret: str) -> bool:
        """Whether the stored key already is `secret` (typed again, nothing is replaced)."""
        if not self.instance.pk or not self.instance.ciphertext:
            return False
        try:
            return vault.decrypt(self.instance.ciphertext) == secret
        except ImproperlyConfigured:  # undecryptable: typing the key again is how staff repair it
            return False


def _exactly_one(form: forms.ModelForm[Any], first: str, second: str, neither: str, both: str) -> None:
    """Refuse `form` unless exactly one of two fields is set, on the fields themselves so the constraint that says
    the same is not reported a second time under its name."""
    chosen = [name for name in (first, second) if form.cleaned_data.get(name)]
    if not chosen:
        form.add_error(first, ValidationError(neither, code="neither"))
        form.add_error(second, ValidationError(neither, code="neither"))
    elif len(chosen) == 2:
        form.add_error(first, ValidationError(both, code="both"))
        form.add_error(second, ValidationError(both, code="both"))


class KeyAssignmentForm(forms.ModelForm[KeyAssignment]):
    class Meta:
        model = KeyAssignment
        fields = ("key", "user", "group")

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        _exactly_one(
            self,
            "user",
            "group",
            neither="Choose the user or the group this key is for.",
            both="Choose a user or a group, not both: map the user and the group in two assignments.",
        )
        return cleaned


class RateLimitForm(forms.ModelForm[RateLimit]):
    class Meta:
        model = RateLimit
        fields = ("user", "application", "rate")

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        _exactly_one(
            self,
            "user",
            "application",
            neither="Choose the user or the client this rate is for.",
            both="Choose a user or a client, not both: give each its own rate.",
        )
        return cleaned
