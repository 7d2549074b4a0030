#!/usr/bin/python3
"""Checks that our etcd .proto files put the same bytes on the wire as etcd.

Usage: wire_compat_test.py OURS.desc

OURS.desc is a FileDescriptorSet that protoc built from proto/etcd/ (with
--include_imports). The reference is the set of descriptors that etcd's own
protoc run produced, as shipped inside Debian's python3-etcd3 (etcd3.etcdrpc).
That copy predates etcd 3.4, so it lacks some 3.4 fields and calls; those are
reported as notes, not failures.

For every message, enum and service present on both sides (by fully qualified
name) this fails on any difference that a peer could notice:
  - a field number with a different name, type, label, message/enum type or
    oneof; a field name with a different number;
  - an enum value missing from ours, or one number with two names;
  - a method missing from ours, or with other request/response types or
    streaming flags;
  - a different file syntax (proto2 and proto3 encode repeated scalars and
    presence differently).
Messages, fields, values and methods the reference has and we do not are
listed, as are those only we have. Exit status: 0 when nothing differs.

Needs only Debian packages: python3-etcd3 and python3-protobuf.
"""

import sys

from google.protobuf import descriptor_pb2

FDP = descriptor_pb2.FieldDescriptorProto
TYPE_NAMES = {v: k[len("TYPE_"):].lower() for k, v in FDP.Type.items()}
LABEL_NAMES = {v: k[len("LABEL_"):].lower() for k, v in FDP.Label.items()}


class Catalog:
    """Messages, enums and services of a set of files, by qualified name."""

    def __init__(self):
        self.messages = {}  # name -> (DescriptorProto, syntax)
        self.enums = {}  # name -> EnumDescriptorProto
        self.services = {}  # name -> ServiceDescriptorProto

    def add_file(self, fdp):
        prefix = "." + fdp.package if fdp.package else ""
        syntax = fdp.syntax or "proto2"
        for enum in fdp.enum_type:
            self.enums[prefix + "." + enum.name] = enum
        for message in fdp.message_type:
            self._add_message(prefix, message, syntax)
        for service in fdp.service:
            self.services[prefix + "." + service.name] = service

    def _add_message(self, prefix, message, syntax):
        name = prefix + "." + message.name
        self.messages[name] = (message, syntax)
        for enum in message.enum_type:
            self.enums[name + "." + enum.name] = enum
        for nested in message.nested_type:
            self._add_message(name, nested, syntax)


def load_ours(path):
    fds = descriptor_pb2.FileDescriptorSet()
    with open(path, "rb") as f:
        fds.ParseFromString(f.read())
    catalog = Catalog()
    for fdp in fds.file:
        catalog.add_file(fdp)
    return catalog


def load_reference():
    try:
        from etcd3.etcdrpc import kv_pb2, rpc_pb2
    except ImportError as e:
        sys.exit("cannot import etcd3.etcdrpc (%s): install Debian's "
                 "python3-etcd3 and run this with /usr/bin/python3" % e)
    catalog = Catalog()
    for module in (kv_pb2, rpc_pb2):
        fdp = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(fdp)
        catalog.add_file(fdp)
    return catalog


def describe_field(message, field):
    text = "%s %s" % (LABEL_NAMES[field.label], TYPE_NAMES[field.type])
    if field.type_name:
        text += " " + field.type_name
    if field.HasField("oneof_index"):
        text += " in oneof " + message.oneof_decl[field.oneof_index].name
    return "%s = %d (%s)" % (field.name, field.number, text)


class Report:
    def __init__(self):
        self.mismatches = []
        self.missing = []  # in the reference, not in ours
        self.extra = []  # in ours, not in the reference

    def mismatch(self, text):
        self.mismatches.append(text)


def compare_messages(name, ours, ref, report):
    ours_msg, ours_syntax = ours
    ref_msg, ref_syntax = ref
    if ours_syntax != ref_syntax:
        report.mismatch("%s: syntax %s, etcd has %s" % (name, ours_syntax, ref_syntax))
    ours_by_number = {f.number: f for f in ours_msg.field}
    ours_by_name = {f.name: f for f in ours_msg.field}
    ref_by_number = {f.number: f for f in ref_msg.field}
    for ref_field in ref_msg.field:
        ref_text = describe_field(ref_msg, ref_field)
        ours_field = ours_by_number.get(ref_field.number)
        if ours_field is None:
            named = ours_by_name.get(ref_field.name)
            if named is not None:
                report.mismatch("%s.%s: field number %d, etcd has %d" % (
                    name, ref_field.name, named.number, ref_field.number))
            else:
                report.missing.append("field %s.%s" % (name, ref_text))
            continue
        ours_text = describe_field(ours_msg, ours_field)
        if ours_text != ref_text:
            report.mismatch("%s: field %s, etcd has %s" % (name, ours_text, ref_text))
    for ours_field in ours_msg.field:
        if ours_field.number not in ref_by_number:
            if any(f.name == ours_field.name for f in ref_msg.field):
                continue  # already reported as a renumbering
            report.extra.append("field %s.%s" % (name, describe_field(ours_msg, ours_field)))


def compare_enums(name, ours, ref, report):
    ours_values = {v.name: v.number for v in ours.value}
    ours_names = {}
    for v in ours.value:
        ours_names.setdefault(v.number, v.name)
    ref_values = {v.name: v.number for v in ref.value}
    for value_name, number in ref_values.items():
        if value_name not in ours_values:
            other = ours_names.get(number)
            if other is not None:
                report.mismatch("%s: value %d is %s, etcd calls it %s" % (
                    name, number, other, value_name))
            else:
                report.mismatch("%s: value %s = %d missing" % (name, value_name, number))
        elif ours_values[value_name] != number:
            report.mismatch("%s.%s = %d, etcd has %d" % (
                name, value_name, ours_values[value_name], number))
    for value_name, number in ours_values.items():
        if value_name not in ref_values and number not in ref_values.values():
            report.extra.append("enum value %s.%s = %d" % (name, value_name, number))


def describe_method(method):
    return "%s%s -> %s%s" % (
        "stream " if method.client_streaming else "", method.input_type,
        "stream " if method.server_streaming else "", method.output_type)


def compare_services(name, ours, ref, report):
    ours_methods = {m.name: m for m in ours.method}
    ref_names = {m.name for m in ref.method}
    for ref_method in ref.method:
        ours_method = ours_methods.get(ref_method.name)
        if ours_method is None:
            report.mismatch("%s: method %s missing" % (name, ref_method.name))
            continue
        if describe_method(ours_method) != describe_method(ref_method):
            report.mismatch("%s/%s: %s, etcd has %s" % (
                name, ref_method.name, describe_method(ours_method),
                describe_method(ref_method)))
    for method in ours.method:
        if method.name not in ref_names:
            report.extra.append("method %s/%s: %s" % (name, method.name, describe_method(method)))


def compare(ours, ref):
    report = Report()
    for kind, ours_map, ref_map, compare_one in (
            ("message", ours.messages, ref.messages, compare_messages),
            ("enum", ours.enums, ref.enums, compare_enums),
            ("service", ours.services, ref.services, compare_services)):
        for name in sorted(ref_map):
            if name in ours_map:
                compare_one(name, ours_map[name], ref_map[name], report)
            else:
                report.missing.append("%s %s" % (kind, name))
        for name in sorted(ours_map):
            if name not in ref_map:
                report.extra.append("%s %s" % (kind, name))
    return report


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: %s OURS.desc" % argv[0])
    ours = load_ours(argv[1])
    ref = load_reference()
    report = compare(ours, ref)
    common = (len(set(ours.messages) & set(ref.messages)),
              len(set(ours.enums) & set(ref.enums)),
              len(set(ours.services) & set(ref.services)))
    print("compared %d messages, %d enums, %d services present on both sides" % common)
    if not common[0] or not common[2]:
        report.mismatch("nothing in common: wrong descriptor set?")
    print("\nin python3-etcd3, not in ours (left out on purpose or missing):")
    for line in report.missing or ["(none)"]:
        print("  " + line)
    print("\nonly in ours (newer than python3-etcd3's copy of etcd):")
    for line in report.extra or ["(none)"]:
        print("  " + line)
    if report.mismatches:
        print("\nMISMATCHES:")
        for line in report.mismatches:
            print("  " + line)
        print("\nFAIL: %d wire mismatches" % len(report.mismatches))
        return 1
    print("\nOK: no wire mismatches")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
