"""The form of the notifications page: a new channel."""

from django import forms

from apps.monitoring.choices import SUBSCRIBABLE, AlertMetric, AlertOperator, ChannelKind, NotifyEvent


class ChannelForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=ChannelKind.choices)
    url = forms.CharField(max_length=2000, required=False, label="URL",
                          help_text="Webhook or Slack-compatible incoming webhook URL")
    recipients = forms.CharField(max_length=2000, required=False, help_text="E-mail addresses, comma-separated")
    events = forms.MultipleChoiceField(
        choices=[(e, NotifyEvent(e).label) for e in SUBSCRIBABLE], initial=list(SUBSCRIBABLE),
        widget=forms.CheckboxSelectMultiple, required=False)


class AlertRuleForm(forms.Form):
    runtime = forms.ModelChoiceField(queryset=None)
    name = forms.CharField(max_length=100)
    service = forms.CharField(max_length=100)
    metric = forms.ChoiceField(choices=AlertMetric.choices)
    operator = forms.ChoiceField(choices=AlertOperator.choices)
    threshold = forms.FloatField()
    duration = forms.IntegerField(min_value=0, initial=300, help_text="Seconds beyond the threshold before it fires")

    def __init__(self, *args, runtimes=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["runtime"].queryset = runtimes
