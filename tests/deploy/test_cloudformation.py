"""deploy/cloudformation/pipeline.yml, checked offline (nothing here reaches AWS).

- cfn-lint (AWS's own resource specifications) finds no error;
- the template, resolved for sets of parameters that take every branch of its conditions
  (and refused for those its Rules refuse), gives task definitions and services the ECS API
  accepts (botocore's RegisterTaskDefinition / CreateService / RunTask shapes);
- what the shapes can't say: secrets only through `Secrets`, health checks, non-root user,
  read-only root file system, deployment bounds, consumer ownership of products, the
  repair service (read-only account, REST URL, one task at most), one trades topic for
  every service, IAM scoped to exactly the secrets and log groups each task uses, and the
  backfill command.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.model import Shape
from botocore.validate import ParamValidator
from pydantic import ValidationError

from repair.settings import RepairSettings
from shared.settings import KafkaSettings
from tests.deploy import cfn
from tests.deploy.contract import ROOT, SECRET_NAMES, check_settings, dockerfile_targets
from tests.deploy.health import snippet_exit_code

SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:"
REQUIRED = {
    "ImageTag": "1.2.0",
    "Subnets": "subnet-0123456789abcdef0,subnet-0fedcba9876543210",
    "KafkaBootstrapServers": "b-1.msk.example:9096,b-2.msk.example:9096",
    "MysqlHost": "mysql.coinbase-pipeline.internal",
    "MysqlWriterSecretArn": SECRET + "coinbase-pipeline/mysql-writer-GhIjKl",
    "MysqlReaderSecretArn": SECRET + "coinbase-pipeline/mysql-reader-StUvWx",
}
# Deployments that between them take every branch of the template's conditions.
CASES: dict[str, dict[str, str]] = {
    "scram-per-instrument": REQUIRED
    | {
        "ConsumerPartitions": "0,1,2",
        "ConsumerCpu": "256",
        "ConsumerMemory": "512",
        "SecurityGroupId": "sg-0123456789abcdef0",
        "KafkaSecretArn": SECRET + "AmazonMSK_coinbase-pipeline-AbCdEf",
        "KafkaSecretKmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab",
        "CoinbaseApiSecretArn": SECRET + "coinbase-pipeline/coinbase-api-MnOpQr",
    },
    "tls-one-consumer-new-group": REQUIRED
    | {
        "ConsumerPartitions": "all",
        "KafkaAuth": "TLS",
        "VpcId": "vpc-0123456789abcdef0",
        "AnalysisIngressCidr": "10.0.0.0/16",
        "MysqlSslCa": "",
        "CreateRepositories": "false",
    },
    "plaintext": REQUIRED | {"SecurityGroupId": "sg-0123456789abcdef0", "KafkaAuth": "PLAINTEXT"},
    # The trade tape off: no trades topic anywhere, and repair deployed with no task.
    "tape-off": REQUIRED
    | {
        "SecurityGroupId": "sg-0123456789abcdef0",
        "KafkaAuth": "TLS",
        "KafkaTradesTopic": "",
        "RepairDesiredCount": "0",
    },
}
PRODUCTS = ["ETH-BTC", "BTC-USD", "BTC-EUR"]
CFN_LINT = str(Path(sys.executable).with_name("cfn-lint"))  # the dev lock's, beside this python
HEALTH_PORT = {"producer": 9101, "consumer": 9102, "analysis": 8000, "repair": 9103}
PORT_VARIABLE = {
    "producer": "PRODUCER_METRICS_PORT",
    "consumer": "CONSUMER_METRICS_PORT",
    "analysis": "ANALYSIS_PORT",
    "repair": "REPAIR_METRICS_PORT",
}
# The services that read `trade` or `order` only, as ticker_reader (SELECT only).
READ_ONLY = {"analysis", "repair"}


@functools.cache
def stack(case: str) -> cfn.Stack:
    return cfn.resolve(CASES[case])


@pytest.fixture(params=sorted(CASES))
def deployed(request: pytest.FixtureRequest) -> cfn.Stack:
    return stack(request.param)


@functools.cache
def input_shape(service: str, operation: str) -> Shape:
    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(operation).input_shape
    assert shape is not None
    return shape


def shape_errors(params: dict[str, Any], operation: str) -> str:
    report = ParamValidator().validate(params, input_shape("ecs", operation))
    return str(report.generate_report()) if report.has_errors() else ""


def api(properties: dict[str, Any], operation: str) -> dict[str, Any]:
    params = cfn.api_params(properties, input_shape("ecs", operation))
    assert isinstance(params, dict)
    return params


def tasks(deployed: cfn.Stack) -> dict[str, dict[str, Any]]:
    return deployed.of_type("AWS::ECS::TaskDefinition")


def services(deployed: cfn.Stack) -> dict[str, dict[str, Any]]:
    return deployed.of_type("AWS::ECS::Service")


def container(task: dict[str, Any]) -> dict[str, Any]:
    definitions = task["ContainerDefinitions"]
    assert len(definitions) == 1, "one container per task"
    item = definitions[0]
    assert isinstance(item, dict)
    return item


def environment(item: dict[str, Any]) -> dict[str, str]:
    return {entry["Name"]: entry["Value"] for entry in item.get("Environment", [])}


def secrets(item: dict[str, Any]) -> dict[str, str]:
    return {entry["Name"]: entry["ValueFrom"] for entry in item.get("Secrets", [])}


def task_of(deployed: cfn.Stack, service: dict[str, Any]) -> dict[str, Any]:
    [task] = [
        t
        for t in tasks(deployed).values()
        if service["TaskDefinition"].endswith(f"/{t['Family']}:1")
    ]
    return task


def consumer_services(deployed: cfn.Stack) -> list[dict[str, Any]]:
    return [s for name, s in services(deployed).items() if name.startswith("ConsumerService")]


# ---------------------------------------------------------------- cfn-lint


@pytest.fixture(scope="module")
def lint_findings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """cfn-lint's findings for the template, its one-consumer layout and a broken copy.

    One cfn-lint run for the three (it takes seconds to start); layouts are selected by
    the parameter's default, as cfn-lint resolves `Fn::ForEach` with the defaults.
    """
    text = cfn.TEMPLATE.read_text()
    folder = tmp_path_factory.mktemp("cfn-lint")
    variants = {
        "all": text,
        "per-instrument": text.replace("Default: all", 'Default: "0,1,2"'),
        "broken": text.replace(
            "DesiredCount: !Ref AnalysisDesiredCount", "DesiredCounts: !Ref AnalysisDesiredCount"
        ).replace(
            "Essential: true\n          Command: [python, -m, analysis]",
            "Essential: maybe\n          Command: [python, -m, analysis]",
        ),
    }
    assert len({*variants.values()}) == 3, "a variant did not change the template"
    for name, body in variants.items():
        (folder / f"{name}.yml").write_text(body)
    result = subprocess.run(
        [CFN_LINT, "--format", "json", *(str(folder / f"{name}.yml") for name in variants)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # Exit status bits: 2 errors, 4 warnings, 8 informational; 1 means cfn-lint itself failed.
    assert result.returncode & 1 == 0, result.stderr
    findings = json.loads(result.stdout or "[]")
    assert isinstance(findings, list)
    return {name: [f for f in findings if Path(f["Filename"]).stem == name] for name in variants}


def errors(findings: list[dict[str, Any]]) -> list[str]:
    return [
        f"{f['Rule']['Id']} line {f['Location']['Start']['LineNumber']}: {f['Message']}"
        for f in findings
        if f["Level"] == "Error"
    ]


@pytest.mark.parametrize("layout", ["per-instrument", "all"])
def test_cfn_lint_finds_no_errors(
    layout: str, lint_findings: dict[str, list[dict[str, Any]]]
) -> None:
    assert errors(lint_findings[layout]) == []


def test_cfn_lint_catches_mistakes(lint_findings: dict[str, list[dict[str, Any]]]) -> None:
    found = " ".join(errors(lint_findings["broken"]))
    assert "DesiredCounts" in found
    assert "maybe" in found


def test_no_yaml_aliases() -> None:
    # CloudFormation rejects YAML anchors and aliases, which PyYAML and cfn-lint accept.
    assert not re.search(r"(?m)^[^#]*[:-] [&*][A-Za-z]", cfn.TEMPLATE.read_text())


# ---------------------------------------------------------------- ECS API request shapes


def test_task_definitions_match_register_task_definition(deployed: cfn.Stack) -> None:
    assert len(tasks(deployed)) >= 4
    for name, task in tasks(deployed).items():
        params = api(task, "RegisterTaskDefinition")
        errors = shape_errors(params, "RegisterTaskDefinition")
        assert not errors, f"{name}:\n{errors}"


def test_services_match_create_service(deployed: cfn.Stack) -> None:
    for name, service in services(deployed).items():
        errors = shape_errors(api(service, "CreateService"), "CreateService")
        assert not errors, f"{name}:\n{errors}"


def test_the_shape_check_catches_mistakes() -> None:
    broken = json.loads(json.dumps(tasks(stack("scram-per-instrument"))["ConsumerTaskDefinition0"]))
    container(broken)["StopTimeout"] = "sixty"  # not a number
    container(broken)["Healthcheck"] = {}  # misspelt key
    del broken["Family"]  # required
    errors = shape_errors(api(broken, "RegisterTaskDefinition"), "RegisterTaskDefinition")
    assert "stopTimeout" in errors
    assert "Healthcheck" in errors
    assert "family" in errors


def test_every_ecs_resource_is_a_checked_kind(deployed: cfn.Stack) -> None:
    kinds = {r["Type"] for r in deployed.resources.values() if r["Type"].startswith("AWS::ECS")}
    assert kinds == {"AWS::ECS::Cluster", "AWS::ECS::TaskDefinition", "AWS::ECS::Service"}


def test_every_image_is_a_repository_a_target_and_pushed_by_make() -> None:
    """The stack's images are exactly the repositories it creates, the Dockerfile's targets of
    those names, and what `make push` pushes (the deploy README's first step)."""
    deployed = stack("scram-per-instrument")  # CreateRepositories: true (the default)
    prefix = f"{cfn.ACCOUNT}.dkr.ecr.{cfn.REGION}.amazonaws.com/coinbase-pipeline/"
    images = {
        container(task)["Image"].removeprefix(prefix).split(":")[0]
        for task in tasks(deployed).values()
    }
    assert images == {"producer", "consumer", "analysis", "repair"}
    repositories = deployed.of_type("AWS::ECR::Repository").values()
    assert {r["RepositoryName"] for r in repositories} == {f"coinbase-pipeline/{i}" for i in images}
    assert images <= dockerfile_targets()
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    pushed = subprocess.run(
        ["make", "-n", "--no-print-directory", "push", "REGISTRY=r.example/cp", "TAG=t1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert {f"docker push r.example/cp/{image}:t1" for image in images} <= set(pushed)
    assert {f"docker build --target {i} -t r.example/cp/{i}:t1 ." for i in images} <= set(pushed)


# ---------------------------------------------------------------- tasks


def test_tasks_run_on_fargate_non_root_read_only(deployed: cfn.Stack) -> None:
    groups = deployed.of_type("AWS::Logs::LogGroup")
    for name, task in tasks(deployed).items():
        assert task["RequiresCompatibilities"] == ["FARGATE"], name
        assert task["NetworkMode"] == "awsvpc"
        assert "TaskRoleArn" not in task, "the code calls no AWS API: no credentials in it"
        assert (task["Cpu"], task["Memory"]) in {
            ("256", "512"),
            ("512", "1024"),
            ("1024", "2048"),
            ("256", "1024"),
            ("512", "2048"),
            ("1024", "4096"),
            ("2048", "4096"),
        }, "a Fargate size"
        item = container(task)
        assert item["Essential"] is True
        assert item["User"].split(":")[0] not in {"0", "root"}, "non-root"
        assert item["ReadonlyRootFilesystem"] is True
        assert task["Volumes"] == [{"Name": "tmp"}]
        assert item["MountPoints"] == [
            {"SourceVolume": "tmp", "ContainerPath": "/tmp", "ReadOnly": False}
        ], "a writable /tmp beside the read-only root"
        assert 2 <= item["StopTimeout"] <= 120, "Fargate allows 2..120 s"
        logs = item["LogConfiguration"]
        assert logs["LogDriver"] == "awslogs"
        group = logs["Options"]["awslogs-group"]
        assert [g for g in groups.values() if g["LogGroupName"] == group], f"{name}: {group}"
        assert logs["Options"]["awslogs-region"] == cfn.REGION
        assert logs["Options"]["awslogs-stream-prefix"].startswith(item["Name"])
        assert task["ExecutionRoleArn"].startswith(f"arn:aws:iam::{cfn.ACCOUNT}:role/")
        image = item["Image"]
        module = item["Command"][2]
        assert item["Command"][:3] == ["python", "-m", item["Name"].replace("backfill", "consumer")]
        assert image == (
            f"{cfn.ACCOUNT}.dkr.ecr.{cfn.REGION}.amazonaws.com/coinbase-pipeline/{module}:1.2.0"
        ), "make push's image names"
    for group in groups.values():
        assert group["RetentionInDays"] == "30"


def test_secrets_come_only_through_secrets(deployed: cfn.Stack) -> None:
    arns = {k: v for k, v in deployed.parameters.items() if k.endswith("SecretArn") and v}
    for name, task in tasks(deployed).items():
        item = container(task)
        plain = environment(item)
        assert not set(plain) & SECRET_NAMES, f"{name}: a secret is a plain environment value"
        assert not [
            key
            for key in plain
            if re.search("PASSWORD|SECRET|PASSPHRASE|API_KEY|USER", key) and key != "MYSQL_USER"
        ], f"{name}: something secret-looking is a plain environment value"
        for secret, source in secrets(item).items():
            arn, key = re.fullmatch(r"(.+):([a-z]+)::", source).groups()  # type: ignore[union-attr]
            assert arn in arns.values(), f"{name}: {secret} from {arn}"
            assert key in {"password", "username", "key", "secret", "passphrase"}


def expected_secrets(deployed: cfn.Stack) -> dict[str, set[str]]:
    scram = deployed.parameters["KafkaAuth"].startswith("SCRAM")
    kafka = {"KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"} if scram else set()
    coinbase = (
        {"COINBASE_API_KEY", "COINBASE_API_SECRET", "COINBASE_API_PASSPHRASE"}
        if deployed.parameters["CoinbaseApiSecretArn"]
        else set()
    )
    return {
        "producer": kafka | coinbase,
        "consumer": kafka | {"MYSQL_PASSWORD"},
        "backfill": kafka | {"MYSQL_PASSWORD"},
        "analysis": {"MYSQL_PASSWORD"},
        "repair": kafka | {"MYSQL_PASSWORD"},
    }


def test_each_task_gets_only_its_secrets(deployed: cfn.Stack) -> None:
    expected = expected_secrets(deployed)
    for task in tasks(deployed).values():
        item = container(task)
        assert set(secrets(item)) == expected[item["Name"]], item["Name"]
    if deployed.parameters["CoinbaseApiSecretArn"] and deployed.parameters["KafkaSecretArn"]:
        wired = {name for task in tasks(deployed).values() for name in secrets(container(task))}
        assert wired == SECRET_NAMES, "all six secrets reach a task"
    writer = deployed.parameters["MysqlWriterSecretArn"]
    reader = deployed.parameters["MysqlReaderSecretArn"]
    for task in tasks(deployed).values():
        item = container(task)
        if "MYSQL_PASSWORD" in secrets(item):
            account = environment(item)["MYSQL_USER"]
            arn = reader if account == "ticker_reader" else writer
            assert secrets(item)["MYSQL_PASSWORD"] == f"{arn}:password::"
            assert account == ("ticker_reader" if item["Name"] in READ_ONLY else "ticker_writer")


def test_kafka_auth_settings(deployed: cfn.Stack) -> None:
    auth = deployed.parameters["KafkaAuth"]
    for task in tasks(deployed).values():
        env = environment(container(task))
        if container(task)["Name"] == "analysis":
            assert not [key for key in env if key.startswith("KAFKA_")], "analysis reads MySQL only"
            continue
        protocol = {"TLS": "SSL", "PLAINTEXT": "PLAINTEXT"}.get(auth, "SASL_SSL")
        assert env["KAFKA_SECURITY_PROTOCOL"] == protocol
        assert env.get("KAFKA_SASL_MECHANISM") == (auth if protocol == "SASL_SSL" else None)
        ca = None if protocol == "PLAINTEXT" else "/etc/ssl/certs/ca-certificates.crt"
        assert env.get("KAFKA_SSL_CA_LOCATION") == ca
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == REQUIRED["KafkaBootstrapServers"]


def test_task_variables_are_real_settings(deployed: cfn.Stack) -> None:
    for task in tasks(deployed).values():
        item = container(task)
        values = environment(item) | {name: "placeholder" for name in secrets(item)}
        check_settings(item["Name"], values)


@pytest.mark.parametrize("name", sorted(HEALTH_PORT))
def test_health_check_calls_healthz_with_python(name: str) -> None:
    task = next(
        t for t in tasks(stack("scram-per-instrument")).values() if container(t)["Name"] == name
    )
    item = container(task)
    port = HEALTH_PORT[name]
    command = item["HealthCheck"]["Command"]
    assert command[:3] == ["CMD", "python", "-c"], "the images have python, not curl"
    assert f"127.0.0.1:{port}/healthz" in command[3]
    assert environment(item)[PORT_VARIABLE[name]] == str(port)
    assert [mapping["ContainerPort"] for mapping in item["PortMappings"]] == [port]
    assert item["HealthCheck"]["StartPeriod"] >= 30
    # The same code, run here against a real /healthz on a free port: 200 passes, 503 fails.
    snippet = command[3].replace(f":{port}/", ":{port}/")
    assert snippet_exit_code(snippet, healthy=True) == 0
    assert snippet_exit_code(snippet, healthy=False) != 0


def test_backfill_task_runs_the_backfill_command(deployed: cfn.Stack) -> None:
    backfill = tasks(deployed)["BackfillTaskDefinition"]
    item = container(backfill)
    assert item["Command"] == ["python", "-m", "consumer", "backfill", "--since", "earliest"]
    assert "HealthCheck" not in item, "a one-off task has no /healthz"
    assert "PortMappings" not in item
    assert environment(item)["CONSUMER_METRICS_PORT"] == "0"
    assert "CONSUMER_PRODUCTS" not in environment(item), "a backfill covers every product"
    assert (
        backfill["ExecutionRoleArn"]
        == task_of(deployed, consumer_services(deployed)[0])["ExecutionRoleArn"]
    )
    same = {
        "PRODUCTS",
        "KAFKA_TOPIC",
        "KAFKA_TRADES_TOPIC",
        "KAFKA_GROUP_ID",
        "MYSQL_HOST",
        "MYSQL_DATABASE",
    }
    for service in consumer_services(deployed):
        consumer = container(task_of(deployed, service))
        assert item["Image"] == consumer["Image"]
        assert {k: environment(item)[k] for k in same} == {
            k: environment(consumer)[k] for k in same
        }
        assert secrets(item) == secrets(consumer)


# ---------------------------------------------------------------- services


def test_services_run_one_task_definition_each_in_private_subnets(deployed: cfn.Stack) -> None:
    group = deployed.outputs["TaskSecurityGroupId"]
    for name, service in services(deployed).items():
        task_of(deployed, service)
        assert service["LaunchType"] == "FARGATE", name
        network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
        assert network["Subnets"] == REQUIRED["Subnets"].split(",")
        assert network["SecurityGroups"] == [group]
        assert network["AssignPublicIp"] == "DISABLED"
        breaker = service["DeploymentConfiguration"]["DeploymentCircuitBreaker"]
        assert breaker == {"Enable": True, "Rollback": True}
    names = [service["ServiceName"] for service in services(deployed).values()]
    families = [task["Family"] for task in tasks(deployed).values()]
    assert len(set(names)) == len(names) and len(set(families)) == len(families)


def test_consumers_own_their_products_and_partitions_follow_products(
    deployed: cfn.Stack,
) -> None:
    owned = []
    for service in consumer_services(deployed):
        env = environment(container(task_of(deployed, service)))
        assert env["PRODUCTS"] == ",".join(PRODUCTS), "PRODUCTS fixes the partitions: all of it"
        owned.append(env["CONSUMER_PRODUCTS"])
        assert service["ServiceName"].endswith(
            "-consumer-" + ("all" if "," in env["CONSUMER_PRODUCTS"] else env["CONSUMER_PRODUCTS"])
        )
    if deployed.parameters["ConsumerPartitions"] == ["all"]:
        assert owned == [",".join(PRODUCTS)]
    else:
        assert owned == PRODUCTS, "one service per instrument, in partition order"


def test_consumer_never_runs_two_tasks_for_one_product(deployed: cfn.Stack) -> None:
    for service in consumer_services(deployed):
        deployment = service["DeploymentConfiguration"]
        assert deployment["MaximumPercent"] == 100
        assert deployment["MinimumHealthyPercent"] == 0
        assert service["DesiredCount"] == deployed.parameters["ConsumerDesiredCount"]
    allowed = deployed.template["Parameters"]["ConsumerDesiredCount"]["AllowedValues"]
    assert {str(value) for value in allowed} == {"0", "1"}


def test_producer_deploys_overlap_instead_of_leaving_a_gap(deployed: cfn.Stack) -> None:
    # Two producers for a moment only duplicate frames, which the table's key drops; a gap
    # loses ticks the live feed can't send again.
    deployment = services(deployed)["ProducerService"]["DeploymentConfiguration"]
    assert (deployment["MaximumPercent"], deployment["MinimumHealthyPercent"]) == (200, 100)
    allowed = deployed.template["Parameters"]["ProducerDesiredCount"]["AllowedValues"]
    assert {str(value) for value in allowed} == {"0", "1"}, "a second producer doubles the feed"


def test_analysis_serves_port_8000_read_only(deployed: cfn.Stack) -> None:
    service = services(deployed)["AnalysisService"]
    item = container(task_of(deployed, service))
    assert item["Command"] == ["python", "-m", "analysis"]
    assert environment(item)["MYSQL_USER"] == "ticker_reader"
    assert item["PortMappings"][0]["ContainerPort"] == 8000
    deployment = service["DeploymentConfiguration"]
    assert (deployment["MaximumPercent"], deployment["MinimumHealthyPercent"]) == (200, 100)
    rules = deployed.of_type("AWS::EC2::SecurityGroupIngress")
    cidr = deployed.parameters["AnalysisIngressCidr"]
    if cidr:
        [rule] = rules.values()
        assert (rule["FromPort"], rule["ToPort"], rule["CidrIp"]) == (8000, 8000, cidr)
    else:
        assert not rules


def test_repair_follows_the_tape_as_the_reader_one_task_at_most(deployed: cfn.Stack) -> None:
    service = services(deployed)["RepairService"]
    task = task_of(deployed, service)
    item = container(task)
    env = environment(item)
    assert item["Command"] == ["python", "-m", "repair", "--follow"]
    assert (task["Cpu"], task["Memory"]) == ("256", "512")
    assert env["MYSQL_USER"] == "ticker_reader", "SELECT on `trade` is all repair needs"
    reader = deployed.parameters["MysqlReaderSecretArn"]
    assert secrets(item)["MYSQL_PASSWORD"] == f"{reader}:password::"
    assert env["COINBASE_REST_URL"] == deployed.parameters["CoinbaseRestUrl"]
    assert env["PRODUCTS"] == ",".join(PRODUCTS), "PRODUCTS fixes the partitions: all of it"
    assert env["KAFKA_TRADES_TOPIC"] == deployed.parameters["KafkaTradesTopic"]
    assert "PortMappings" in item and "HealthCheck" in item
    # Two repairers would fetch the same trades at one per-IP REST limit: stop, then start.
    deployment = service["DeploymentConfiguration"]
    assert (deployment["MaximumPercent"], deployment["MinimumHealthyPercent"]) == (100, 0)
    assert service["DesiredCount"] == deployed.parameters["RepairDesiredCount"]
    spec = deployed.template["Parameters"]["RepairDesiredCount"]
    assert {str(value) for value in spec["AllowedValues"]} == {"0", "1"}
    assert str(spec["Default"]) == "1"
    if not deployed.parameters["KafkaTradesTopic"]:
        assert service["DesiredCount"] == "0", "no trade tape, nothing to repair"


def test_coinbase_rest_url_parameter_is_repair_s_setting() -> None:
    spec = cfn.load()["Parameters"]["CoinbaseRestUrl"]
    assert spec["Default"] == RepairSettings.model_fields["coinbase_rest_url"].default
    assert spec["Default"] == "https://api.exchange.coinbase.com"
    # The parameter's pattern accepts exactly what the setting accepts.
    for url in [
        "https://api.exchange.coinbase.com",
        "http://simulator:8765",
        "https://api-public.sandbox.exchange.coinbase.com/",
        "https://proxy.internal/coinbase",
        "ftp://api.exchange.coinbase.com",
        "api.exchange.coinbase.com",
        "https://",
        "https://api.exchange.coinbase.com?x=1",
        "https://api exchange.coinbase.com",
        "",
    ]:
        try:
            RepairSettings.model_validate({"coinbase_rest_url": url})
            valid = True
        except ValidationError:
            valid = False
        assert bool(re.fullmatch(spec["AllowedPattern"], url)) == valid, url


def test_every_service_on_kafka_gets_the_one_trades_topic(deployed: cfn.Stack) -> None:
    topic = deployed.parameters["KafkaTradesTopic"]
    on_kafka = [
        container(task)
        for task in tasks(deployed).values()
        if "KAFKA_BOOTSTRAP_SERVERS" in environment(container(task))
    ]
    assert {item["Name"] for item in on_kafka} == {"producer", "consumer", "backfill", "repair"}
    for item in on_kafka:
        assert environment(item)["KAFKA_TRADES_TOPIC"] == topic, item["Name"]
    default = cfn.load()["Parameters"]["KafkaTradesTopic"]["Default"]
    assert default == KafkaSettings.model_fields["kafka_trades_topic"].default


@pytest.mark.parametrize(
    ("overrides", "refusal"),
    [
        ({"KafkaTradesTopic": ""}, "RepairDesiredCount must be 0"),
        ({"KafkaTradesTopic": "coinbase.ticker"}, "must differ from KafkaTopic"),
        ({"KafkaTradesTopic": "coinbase.ticker.dlq"}, "must differ from KafkaTopic"),
        ({"KafkaAuth": "SCRAM-SHA-512"}, "KafkaSecretArn is required"),
        ({"SecurityGroupId": ""}, "VpcId is required"),
    ],
)
def test_rules_refuse_stacks_whose_services_cannot_start(
    overrides: dict[str, str], refusal: str
) -> None:
    base = CASES["plaintext"]
    with pytest.raises(AssertionError, match=refusal):
        cfn.resolve(base | overrides)
    # The same stack without the mistake is accepted.
    assert cfn.resolve(base).resources


def test_created_security_group_only_when_none_is_given(deployed: cfn.Stack) -> None:
    created = deployed.of_type("AWS::EC2::SecurityGroup")
    if deployed.parameters["SecurityGroupId"]:
        assert not created
    else:
        [group] = created.values()
        assert group["VpcId"] == deployed.parameters["VpcId"]
        assert "SecurityGroupIngress" not in group, "no inbound rule but the analysis one"


# ---------------------------------------------------------------- IAM


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def test_execution_roles_reach_exactly_what_their_tasks_use(deployed: cfn.Stack) -> None:
    roles = deployed.of_type("AWS::IAM::Role")
    for role_name, role in roles.items():
        users = [t for t in tasks(deployed).values() if t["ExecutionRoleArn"].endswith(role_name)]
        assert users, f"{role_name} is used by no task"
        trust = role["AssumeRolePolicyDocument"]["Statement"]
        assert [s["Principal"] for s in trust] == [{"Service": "ecs-tasks.amazonaws.com"}]
        wanted_secrets = {
            source.rsplit(":", 3)[0] for t in users for source in secrets(container(t)).values()
        }
        wanted_groups = {
            container(t)["LogConfiguration"]["Options"]["awslogs-group"] for t in users
        }
        granted: dict[str, set[str]] = {}
        for statement in statements(role):
            assert statement["Effect"] == "Allow"
            for action in as_list(statement["Action"]):
                assert "*" not in action, f"{role_name}: {action}"
                granted.setdefault(action, set()).update(as_list(statement["Resource"]))
        assert granted.pop("ecr:GetAuthorizationToken") == {"*"}  # no resource-level form
        assert granted.get("secretsmanager:GetSecretValue", set()) == wanted_secrets, role_name
        assert all("*" not in arn for arn in granted.get("secretsmanager:GetSecretValue", ()))
        groups = {
            f"arn:aws:logs:{cfn.REGION}:{cfn.ACCOUNT}:log-group:{group}:*"
            for group in wanted_groups
        }
        assert granted["logs:CreateLogStream"] == granted["logs:PutLogEvents"] == groups
        images = {container(t)["Image"].split(".amazonaws.com/")[1].split(":")[0] for t in users}
        repositories = {
            f"arn:aws:ecr:{cfn.REGION}:{cfn.ACCOUNT}:repository/{image}" for image in images
        }
        assert granted["ecr:BatchGetImage"] == repositories
        kms = granted.get("kms:Decrypt", set())
        uses_kafka_secret = any("KAFKA_SASL_PASSWORD" in secrets(container(t)) for t in users)
        key = deployed.parameters["KafkaSecretKmsKeyArn"]
        assert kms == ({key} if uses_kafka_secret and key else set()), role_name


# ---------------------------------------------------------------- outputs


def test_outputs_name_every_service_and_the_backfill(deployed: cfn.Stack) -> None:
    outputs = deployed.outputs
    named = {
        value
        for key, value in outputs.items()
        if key.endswith("ServiceName") or key.startswith("ConsumerServiceName")
    }
    assert named == {s["ServiceName"] for s in services(deployed).values()}
    backfill_arn = outputs["BackfillTaskDefinitionArn"]
    assert backfill_arn.endswith(f"/{tasks(deployed)['BackfillTaskDefinition']['Family']}:1")


def test_backfill_command_is_a_valid_run_task(deployed: cfn.Stack) -> None:
    words = shlex.split(deployed.outputs["BackfillCommand"])
    assert words[:3] == ["aws", "ecs", "run-task"]
    options = dict(zip(words[3::2], words[4::2], strict=True))
    assert options["--cluster"] == deployed.outputs["ClusterName"]
    assert options["--task-definition"] == deployed.outputs["BackfillTaskDefinitionArn"]
    network = services(deployed)["ProducerService"]["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert options["--network-configuration"] == (
        f"awsvpcConfiguration={{subnets=[{','.join(network['Subnets'])}],"
        f"securityGroups=[{','.join(network['SecurityGroups'])}],"
        f"assignPublicIp={network['AssignPublicIp']}}}"
    )
    request = {
        "cluster": options["--cluster"],
        "launchType": options["--launch-type"],
        "taskDefinition": options["--task-definition"],
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": network["Subnets"],
                "securityGroups": network["SecurityGroups"],
                "assignPublicIp": network["AssignPublicIp"],
            }
        },
        "overrides": json.loads(options["--overrides"]),
    }
    errors = shape_errors(request, "RunTask")
    assert not errors, errors
    [override] = request["overrides"]["containerOverrides"]
    assert override["name"] == container(tasks(deployed)["BackfillTaskDefinition"])["Name"]
    assert override["command"][:4] == ["python", "-m", "consumer", "backfill"]


def test_readme_deploy_command_sets_every_required_parameter() -> None:
    text = (ROOT / "deploy" / "cloudformation" / "README.md").read_text()
    command = re.search(
        r"aws cloudformation deploy .*?--parameter-overrides(.*?)\n\s*\n",
        text.replace("\\\n", " "),
        re.S,
    )
    assert command, "no deploy command in the README"
    given = set(re.findall(r"\b([A-Z][A-Za-z]+)=", command.group(1)))
    declared = cfn.load()["Parameters"]
    assert given <= set(declared)
    assert {name for name, spec in declared.items() if "Default" not in spec} <= given
