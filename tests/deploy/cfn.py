"""Resolve deploy/cloudformation/pipeline.yml for given parameters, offline.

Enough of CloudFormation to check what the stack would create: the short YAML tags,
parameter defaults and their allowed values or patterns, the template's `Rules` (a set of
parameters they refuse is refused here too), conditions, `Fn::ForEach` (the
AWS::LanguageExtensions transform), and the intrinsic functions the template uses. Resources
are named the way CloudFormation names them (a task definition's Ref is its ARN, a log
group's its name); ids that only AWS could make up (role ARNs, security group ids) get
stable stand-ins. Then `api_params` turns a resource's properties into the ECS API request
botocore can validate.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from botocore.model import ListShape, MapShape, Shape, StructureShape

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "cloudformation" / "pipeline.yml"

ACCOUNT, REGION = "123456789012", "eu-west-1"
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "coinbase-pipeline",
}
CREATED_SECURITY_GROUP = "sg-0c0ffee0c0ffee000"


class _NoValue:
    """AWS::NoValue: the list item or property it stands for is dropped."""


NO_VALUE = _NoValue()


class _TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, !GetAtt, ...) in long form."""


def _short_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref" or suffix == "Condition":
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_TemplateLoader.add_multi_constructor("!", _short_tag)


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    data = yaml.load(path.read_text(), Loader=_TemplateLoader)  # a SafeLoader subclass
    assert isinstance(data, dict)
    return data


@dataclass
class Stack:
    """The template resolved for one set of parameter values."""

    template: dict[str, Any]
    parameters: dict[str, Any]
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        """Properties of every resource of this type, by logical id."""
        return {
            name: resource["Properties"]
            for name, resource in self.resources.items()
            if resource["Type"] == kind
        }


def resolve(overrides: dict[str, Any], template: dict[str, Any] | None = None) -> Stack:
    template = copy.deepcopy(template if template is not None else load())
    parameters = _parameter_values(template["Parameters"], overrides)
    stack = Stack(template, parameters)
    resolver = _Resolver(stack)
    _check_rules(template.get("Rules", {}), resolver)
    declared = _expand_for_each(template["Resources"], resolver)
    for name, resource in declared.items():
        if "Condition" in resource and not resolver.condition(resource["Condition"]):
            continue
        stack.resources[name] = resource  # resolved on first use, below or by a Ref
    for name in list(stack.resources):
        resolver.resource(name)
    for name, output in _expand_for_each(template.get("Outputs", {}), resolver).items():
        if "Condition" in output and not resolver.condition(output["Condition"]):
            continue
        stack.outputs[name] = resolver.value(output["Value"])
    return stack


def _parameter_values(declared: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = set(overrides) - set(declared)
    assert not unknown, f"not parameters of the template: {sorted(unknown)}"
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        assert name in overrides or "Default" in spec, f"parameter {name} has no value"
        raw = str(overrides.get(name, spec.get("Default")))
        allowed = spec.get("AllowedValues")
        if allowed is not None:
            assert raw in {str(item) for item in allowed}, f"{name}={raw!r} not allowed"
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"], raw), f"{name}={raw!r} breaks the pattern"
        if spec["Type"] == "Number":
            assert (
                spec.get("MinValue", float("-inf"))
                <= float(raw)
                <= spec.get("MaxValue", float("inf"))
            ), f"{name}={raw} out of range"
        is_list = spec["Type"].startswith("List<") or spec["Type"] == "CommaDelimitedList"
        values[name] = raw.split(",") if is_list else raw
    return values


def _check_rules(rules: dict[str, Any], resolver: _Resolver) -> None:
    """What CloudFormation checks before it creates anything: each rule whose RuleCondition
    holds (or that has none) must have every assertion hold."""
    for name, rule in rules.items():
        if "RuleCondition" in rule and not resolver.truth(rule["RuleCondition"]):
            continue
        for assertion in rule["Assertions"]:
            assert resolver.truth(assertion["Assert"]), (
                f"rule {name}: {assertion.get('AssertDescription', 'assertion failed')}"
            )


def _expand_for_each(section: dict[str, Any], resolver: _Resolver) -> dict[str, Any]:
    """`Fn::ForEach::Name: [Identifier, Collection, {Key${Identifier}: body}]`, expanded."""
    expanded: dict[str, Any] = {}
    for key, value in section.items():
        if not key.startswith("Fn::ForEach::"):
            expanded[key] = value
            continue
        identifier, collection, body = value
        for item in resolver.value(collection):
            copied = _substitute(copy.deepcopy(body), identifier, str(item))
            expanded.update(_expand_for_each(copied, resolver))
    return expanded


def _substitute(node: Any, identifier: str, item: str) -> Any:
    if isinstance(node, str):
        plain = re.sub(r"[^A-Za-z0-9]", "", item)
        return node.replace("${" + identifier + "}", item).replace("&{" + identifier + "}", plain)
    if isinstance(node, list):
        return [_substitute(entry, identifier, item) for entry in node]
    if isinstance(node, dict):
        if node == {"Ref": identifier}:
            return item
        return {
            _substitute(key, identifier, item): _substitute(value, identifier, item)
            for key, value in node.items()
        }
    return node


class _Resolver:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.done: set[str] = set()
        self.conditions: dict[str, bool] = {}

    # ---------------------------------------------------------------- conditions
    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = self.truth(self.stack.template["Conditions"][name])
        return self.conditions[name]

    def truth(self, node: Any) -> bool:
        ((function, argument),) = node.items()
        if function == "Condition":
            return self.condition(argument)
        if function == "Fn::Equals":
            left, right = (self.value(part) for part in argument)
            return str(left) == str(right)
        if function == "Fn::Not":
            return not self.truth(argument[0])
        if function == "Fn::And":
            return all(self.truth(part) for part in argument)
        if function == "Fn::Or":
            return any(self.truth(part) for part in argument)
        raise AssertionError(f"unsupported condition function {function}")

    # ---------------------------------------------------------------- resources
    def resource(self, name: str) -> dict[str, Any]:
        assert name in self.stack.resources, f"no resource {name} (or its condition is false)"
        resource = self.stack.resources[name]
        if name not in self.done:
            self.done.add(name)
            resource["Properties"] = self.value(resource.get("Properties", {}))
        return resource

    def ref(self, name: str) -> Any:
        if name in PSEUDO:
            return PSEUDO[name]
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.stack.parameters:
            return self.stack.parameters[name]
        resource = self.resource(name)
        properties, kind = resource["Properties"], resource["Type"]
        if kind == "AWS::ECS::TaskDefinition":
            return f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{properties['Family']}:1"
        named = {
            "AWS::Logs::LogGroup": "LogGroupName",
            "AWS::ECS::Cluster": "ClusterName",
            "AWS::ECR::Repository": "RepositoryName",
        }
        key = named.get(kind)
        if key:
            return properties[key]
        if kind == "AWS::EC2::SecurityGroup":
            return CREATED_SECURITY_GROUP
        if kind == "AWS::SNS::Topic":
            return f"arn:aws:sns:{REGION}:{ACCOUNT}:{properties['TopicName']}"
        raise AssertionError(f"Ref to {kind} is not modelled")

    def get_att(self, name: str, attribute: str) -> Any:
        resource = self.resource(name)
        properties, kind = resource["Properties"], resource["Type"]
        if (kind, attribute) == ("AWS::IAM::Role", "Arn"):
            return f"arn:aws:iam::{ACCOUNT}:role/coinbase-pipeline-{name}"
        if (kind, attribute) == ("AWS::Logs::LogGroup", "Arn"):
            return f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{properties['LogGroupName']}:*"
        if (kind, attribute) == ("AWS::EC2::SecurityGroup", "GroupId"):
            return CREATED_SECURITY_GROUP
        if (kind, attribute) == ("AWS::ECS::Service", "Name"):
            return properties["ServiceName"]
        if (kind, attribute) == ("AWS::ECS::TaskDefinition", "TaskDefinitionArn"):
            return self.ref(name)
        if (kind, attribute) == ("AWS::ECS::Cluster", "Arn"):
            return f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{properties['ClusterName']}"
        if (kind, attribute) == ("AWS::Events::Rule", "Arn"):
            return f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{properties['Name']}"
        raise AssertionError(f"GetAtt {kind}.{attribute} is not modelled")

    # ---------------------------------------------------------------- values
    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.value(entry) for entry in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, argument),) = node.items()
            if key == "Ref":
                return self.ref(argument)
            if key.startswith("Fn::"):
                return self._function(key, argument)
        resolved = {key: self.value(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not NO_VALUE}

    def _function(self, function: str, argument: Any) -> Any:
        if function == "Fn::If":
            name, when_true, when_false = argument
            return self.value(when_true if self.condition(name) else when_false)
        if function == "Fn::GetAtt":
            name, attribute = (self.value(part) for part in argument)
            return self.get_att(name, attribute)
        if function == "Fn::Sub":
            return self._sub(argument)
        if function == "Fn::Join":
            separator, items = argument
            return separator.join(str(item) for item in self.value(items))
        if function == "Fn::Split":
            separator, text = argument
            return str(self.value(text)).split(separator)
        if function == "Fn::Select":
            index, items = argument
            return self.value(items)[int(self.value(index))]
        if function == "Fn::FindInMap":
            # [Map, TopKey, SecondKey] or, with the LanguageExtensions transform,
            # [Map, TopKey, SecondKey, {DefaultValue: value}].
            name, top, second = (self.value(part) for part in argument[:3])
            mapping = self.stack.template["Mappings"][name]
            if top in mapping and second in mapping[top]:
                return mapping[top][second]
            assert len(argument) == 4, f"Fn::FindInMap: no {name}/{top}/{second}, no default"
            return self.value(argument[3]["DefaultValue"])
        raise AssertionError(f"unsupported function {function}")

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {name: self.value(value) for name, value in variables.items()}

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in values:
                return str(values[name])
            if "." in name and name.split(".")[0] in self.stack.resources:
                return str(self.get_att(*name.split(".", 1)))
            return str(self.ref(name))

        return re.sub(r"\$\{([A-Za-z0-9:.]+)\}", one, text)


# -------------------------------------------------------------------- to API requests


def api_params(properties: Any, shape: Shape) -> Any:
    """CloudFormation's PascalCase properties as the API's request, guided by its shape.

    Structure members are the API names with the first letter capitalised; maps keep their
    keys (log options); numbers and booleans given as parameter strings are converted, as
    CloudFormation does. A property the shape doesn't know is kept under its own name, so
    the validator reports it.
    """
    if isinstance(shape, StructureShape) and isinstance(properties, dict):
        members = {name[0].upper() + name[1:]: name for name in shape.members}
        result: dict[str, Any] = {}
        for key, value in properties.items():
            member = members.get(key)
            result[member or key] = api_params(value, shape.members[member]) if member else value
        return result
    if isinstance(shape, ListShape) and isinstance(properties, list):
        return [api_params(item, shape.member) for item in properties]
    if isinstance(shape, MapShape) and isinstance(properties, dict):
        return {key: api_params(value, shape.value) for key, value in properties.items()}
    if shape.type_name in {"integer", "long"} and isinstance(properties, str):
        return int(properties) if re.fullmatch(r"-?\d+", properties) else properties
    if shape.type_name == "boolean" and properties in {"true", "false"}:
        return properties == "true"
    return properties
