#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""What lava-server does with a job for a device before a dispatcher runs
it: validate the job against lava_common's schema, strictly (as on
submission), then render the device dictionary into the device
configuration that lava-run --device reads
(lava_scheduler_app.models.Device.load_configuration: lava_common's
sandboxed Jinja2 environment for device templates, a FileSystemLoader over
the dictionaries' folder and then the device types', and the job's context
with scheduled_device_name and scheduled_device_type as the variables), and
validate that against lava_common's device schema. The configuration goes
to stdout.

usage: render-device.py DEVICES_DIR DEVICE_TYPES_DIR DEVICE DEVICE_TYPE JOB.yaml
"""
import sys

import yaml
from jinja2 import FileSystemLoader
from lava_common.jinja import create_device_templates_env
from lava_common.schemas import validate as validate_job
from lava_common.schemas.device import validate as validate_device

devices, device_types, device, device_type, job = sys.argv[1:6]
env = create_device_templates_env(loader=FileSystemLoader([devices, device_types]), cache_size=-1)
with open(job, encoding="utf-8") as f:
    definition = yaml.safe_load(f)
validate_job(definition, strict=True)
context = dict(definition.get("context") or {})
context["scheduled_device_name"] = device
context["scheduled_device_type"] = device_type
text = env.get_template(f"{device}.jinja2").render(**context)
validate_device(yaml.safe_load(text))
sys.stdout.write(text)
