"""The CloudFormation stack's alarms, checked offline on the resolved template.

- every ECS service that should run a task has an alarm for "no task running", and one
  deployed with no task has none;
- the EventBridge rule matches a task of this cluster stopping with exit code 2 or 3, for
  every service and the backfill, and nothing else; its message's placeholders all come
  from the event;
- every log group has a metric filter that matches the "fatal" line the code really writes
  (shared/failures.py, run here), feeding the fatal alarm;
- alarms are valid PutMetricAlarm requests (botocore's shapes), notify the one topic, which
  lets CloudWatch and that rule publish, and name a runbook entry of README.md.
cfn-lint checks them with the rest of the template (test_cloudformation.py).
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from typing import Any

import pytest
from botocore.validate import ParamValidator

from tests.deploy import cfn
from tests.deploy.contract import ROOT
from tests.deploy.test_alerts import runbook_anchors
from tests.deploy.test_cloudformation import CASES, REQUIRED, input_shape

# The README's first deploy: every service at 0 tasks, before the images exist.
FIRST_DEPLOY = REQUIRED | {
    "SecurityGroupId": "sg-0123456789abcdef0",
    "KafkaAuth": "PLAINTEXT",
    "ProducerDesiredCount": "0",
    "ConsumerDesiredCount": "0",
    "AnalysisDesiredCount": "0",
    "RepairDesiredCount": "0",
    "AlarmEmail": "oncall@example.com",
}
LAYOUTS = CASES | {"first-deploy": FIRST_DEPLOY}


@functools.cache
def stack(case: str) -> cfn.Stack:
    return cfn.resolve(LAYOUTS[case])


@pytest.fixture(params=sorted(LAYOUTS))
def deployed(request: pytest.FixtureRequest) -> cfn.Stack:
    return stack(request.param)


def alarms(deployed: cfn.Stack) -> dict[str, dict[str, Any]]:
    return deployed.of_type("AWS::CloudWatch::Alarm")


def topic_arn(deployed: cfn.Stack) -> str:
    [topic] = deployed.of_type("AWS::SNS::Topic").values()
    return f"arn:aws:sns:{cfn.REGION}:{cfn.ACCOUNT}:{topic['TopicName']}"


def test_each_wanted_service_has_a_no_task_running_alarm(deployed: cfn.Stack) -> None:
    cluster = deployed.outputs["ClusterName"]
    watched = {
        dimensions["ServiceName"]: alarm
        for alarm in alarms(deployed).values()
        if alarm["Namespace"] == "AWS/ECS"
        for dimensions in [{d["Name"]: d["Value"] for d in alarm["Dimensions"]}]
        if dimensions["ClusterName"] == cluster
    }
    wanted = {
        service["ServiceName"]
        for service in deployed.of_type("AWS::ECS::Service").values()
        if str(service["DesiredCount"]) != "0"
    }
    assert set(watched) == wanted
    for alarm in watched.values():
        # No data is the signal: ECS publishes a service's CPU only while a task runs.
        assert (alarm["MetricName"], alarm["Statistic"]) == ("CPUUtilization", "SampleCount")
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("LessThanThreshold", 1)
        assert alarm["TreatMissingData"] == "breaching"
        assert alarm["Period"] * alarm["DatapointsToAlarm"] >= 300, "longer than a deploy's gap"


def test_alarms_are_valid_requests_that_notify_the_topic_and_name_a_runbook(
    deployed: cfn.Stack,
) -> None:
    request_shape = input_shape("cloudwatch", "PutMetricAlarm")
    anchors = runbook_anchors()
    for name, alarm in alarms(deployed).items():
        report = ParamValidator().validate(cfn.api_params(alarm, request_shape), request_shape)
        assert not report.has_errors(), f"{name}: {report.generate_report()}"
        assert alarm["AlarmActions"] == [topic_arn(deployed)], name
        anchor = re.search(r"README\.md#([\w-]+)", alarm["AlarmDescription"])
        assert anchor and anchor.group(1) in anchors, f"{name}: no runbook entry"
    names = [alarm["AlarmName"] for alarm in alarms(deployed).values()]
    assert len(set(names)) == len(names)


def test_topic_lets_cloudwatch_and_the_exit_rule_publish(deployed: cfn.Stack) -> None:
    [policy] = deployed.of_type("AWS::SNS::TopicPolicy").values()
    assert policy["Topics"] == [topic_arn(deployed)]
    [rule] = deployed.of_type("AWS::Events::Rule").values()
    rule_arn = f"arn:aws:events:{cfn.REGION}:{cfn.ACCOUNT}:rule/{rule['Name']}"
    allowed = {
        statement["Principal"]["Service"]: statement["Condition"]
        for statement in policy["PolicyDocument"]["Statement"]
        if statement["Action"] == "sns:Publish" and statement["Resource"] == topic_arn(deployed)
    }
    assert allowed == {
        "cloudwatch.amazonaws.com": {"StringEquals": {"aws:SourceAccount": cfn.ACCOUNT}},
        "events.amazonaws.com": {"ArnEquals": {"aws:SourceArn": rule_arn}},
    }
    subscriptions = deployed.of_type("AWS::SNS::Subscription")
    email = deployed.parameters["AlarmEmail"]
    expected = [("email", email, topic_arn(deployed))] if email else []
    assert [(s["Protocol"], s["Endpoint"], s["TopicArn"]) for s in subscriptions.values()] == (
        expected
    )


# ---------------------------------------------------------------- exit codes


def task_stopped(deployed: cfn.Stack, exit_code: int | None, **detail: Any) -> dict[str, Any]:
    """An ECS "Task State Change" event as ECS sends it (the fields the rule reads)."""
    cluster = f"arn:aws:ecs:{cfn.REGION}:{cfn.ACCOUNT}:cluster/{deployed.outputs['ClusterName']}"
    return {
        "source": "aws.ecs",
        "detail-type": "ECS Task State Change",
        "detail": {
            "clusterArn": cluster,
            "group": "service:coinbase-pipeline-producer",
            "lastStatus": "STOPPED",
            "stoppedReason": "Essential container in task exited",
            "taskArn": f"arn:aws:ecs:{cfn.REGION}:{cfn.ACCOUNT}:task/coinbase-pipeline/0abc",
            "containers": [{"name": "producer", "exitCode": exit_code}],
        }
        | detail,
    }


def matches(pattern: dict[str, Any], event: Any) -> bool:
    """EventBridge's matching for what the rule uses: lists of allowed values, nested
    objects, and arrays in the event (any element may match)."""
    if isinstance(event, list):
        return any(matches(pattern, item) for item in event)
    if not isinstance(event, dict):
        return False
    for key, expected in pattern.items():
        value = event.get(key)
        if isinstance(expected, dict):
            if not matches(expected, value):
                return False
        elif not any(item in expected for item in (value if isinstance(value, list) else [value])):
            return False
    return True


def test_exit_rule_matches_only_exit_2_or_3_of_this_cluster(deployed: cfn.Stack) -> None:
    [rule] = deployed.of_type("AWS::Events::Rule").values()
    pattern = rule["EventPattern"]
    for code in (2, 3):
        assert matches(pattern, task_stopped(deployed, code)), code
    for other_code in (0, 1, 137, None):  # None: stopped before the container ran
        assert not matches(pattern, task_stopped(deployed, other_code)), other_code
    assert not matches(pattern, task_stopped(deployed, 3, lastStatus="RUNNING"))
    other = "arn:aws:ecs:eu-west-1:123456789012:cluster/another"
    assert not matches(pattern, task_stopped(deployed, 3, clusterArn=other))
    [target] = rule["Targets"]
    assert target["Arn"] == topic_arn(deployed)
    transformer = target["InputTransformer"]
    event = task_stopped(deployed, 3)
    for name, path in transformer["InputPathsMap"].items():
        assert json_path(event, path) is not None, f"{name}: {path} not in the event"
    used = set(re.findall(r"<(\w+)>", transformer["InputTemplate"]))
    assert used == set(transformer["InputPathsMap"])
    assert json.loads(transformer["InputTemplate"]), "the message must be one JSON string"


def test_exit_rule_covers_every_task_of_the_stack(deployed: cfn.Stack) -> None:
    """Any task of the stack exiting 2 or 3 is one message, whichever service started it
    (or a backfill run by hand): the rule is not limited to some of them."""
    [rule] = deployed.of_type("AWS::Events::Rule").values()
    project = deployed.outputs["ClusterName"]
    containers = {  # ECS's group of a task -> its container's name
        f"family:{task['Family']}": task["ContainerDefinitions"][0]["Name"]
        for task in deployed.of_type("AWS::ECS::TaskDefinition").values()
    }
    for service in deployed.of_type("AWS::ECS::Service").values():
        [family] = [
            group
            for group in containers
            if service["TaskDefinition"].endswith(f"/{group.removeprefix('family:')}:1")
        ]
        containers[f"service:{service['ServiceName']}"] = containers.pop(family)
    assert {f"service:{project}-repair", f"family:{project}-backfill"} <= set(containers)
    for group, name in containers.items():
        for code in (2, 3):
            event = task_stopped(deployed, code, group=group)
            event["detail"]["containers"] = [{"name": name, "exitCode": code}]
            assert matches(rule["EventPattern"], event), (group, code)
        assert not matches(rule["EventPattern"], task_stopped(deployed, 0, group=group))


def json_path(event: Any, path: str) -> Any:
    for part in re.findall(r"\.(\w[\w-]*)|\[(\d+)\]", path.removeprefix("$")):
        key, index = part
        event = event[int(index)] if index else event.get(key)
    return event


# ---------------------------------------------------------------- fatal lines


@functools.cache
def fatal_line() -> dict[str, Any]:
    """The first stderr line of a command stopping on a Fatal, as shared/failures.py writes it
    with JSON logs (as on ECS)."""
    code = (
        "from shared.logs import configure_logging; configure_logging('json');"
        "from shared.failures import Fatal, report; report('consumer', Fatal('table gone'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    first, plain = result.stderr.splitlines()
    assert plain == "table gone"
    line = json.loads(first)
    assert isinstance(line, dict)
    return line


def filter_matches(pattern: str, line: dict[str, Any]) -> bool:
    """A CloudWatch Logs JSON filter of the one form used: { $.field = "value" }."""
    found = re.fullmatch(r'\{ \$\.(\w+) = "([^"]*)" \}', pattern)
    assert found, f"unexpected filter pattern {pattern!r}"
    return line.get(found.group(1)) == found.group(2)


def test_every_log_group_counts_fatal_lines_into_the_alarm(deployed: cfn.Stack) -> None:
    groups = {group["LogGroupName"] for group in deployed.of_type("AWS::Logs::LogGroup").values()}
    filters = deployed.of_type("AWS::Logs::MetricFilter").values()
    assert sorted(f["LogGroupName"] for f in filters) == sorted(groups)
    [alarm] = [a for a in alarms(deployed).values() if a["MetricName"] == "FatalEvents"]
    assert (alarm["Statistic"], alarm["Threshold"], alarm["Period"]) == ("Sum", 1, 60)
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    line = fatal_line()
    assert line["exit_code"] == 1 and line["command"] == "consumer"
    for metric_filter in filters:
        assert filter_matches(metric_filter["FilterPattern"], line)
        assert not filter_matches(metric_filter["FilterPattern"], {"event": "dead letter"})
        [transformation] = metric_filter["MetricTransformations"]
        assert (transformation["MetricNamespace"], transformation["MetricName"]) == (
            alarm["Namespace"],
            alarm["MetricName"],
        )
        shape = input_shape("logs", "PutMetricFilter")
        report = ParamValidator().validate(cfn.api_params(metric_filter, shape), shape)
        assert not report.has_errors(), report.generate_report()
