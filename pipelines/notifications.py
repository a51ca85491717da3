"""Be told when a thb-signals flow run fails: a Prefect automation that sends a saved notification block.

Prefect's server does the watching (its triggers service reacts to `prefect.flow-run.Failed` and `Crashed`
events), so a run that fails at 02:00 is reported even if nobody looks at the UI. Set up once per server:

    python -m pipelines.notifications slack-webhook/thb-failures

where `slack-webhook/thb-failures` is a notification block saved beforehand (README: Scheduled runs).
The message carries the flow, the run and Prefect's state message (the error), never alert contents.
"""

from __future__ import annotations

import argparse
import sys

# every flow a deployment or a command runs at the top level
FLOWS = ("batch-scoring", "score", "run", "ingest", "score-sharded", "purge", "fiu-screen")
NAME = "thb-signals run failed"


def failure_automation(block_document_id, flows: tuple[str, ...] = FLOWS):
    from prefect.automations import Automation
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    return Automation(
        name=NAME,
        description="Notify when a thb-signals flow run fails or crashes (created by pipelines/notifications.py)",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": list(flows)},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[
            SendNotification(
                block_document_id=block_document_id,
                subject="thb-signals: {{ flow.name }} run failed",
                body="Flow run {{ flow_run.name }} of {{ flow.name }} ended {{ flow_run.state.name }}: "
                "{{ flow_run.state.message }}. `thb-signals status --db ...` lists the run and its error.",
            )
        ],
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.notifications", description=__doc__.split("\n")[0])
    p.add_argument("block", help="a saved notification block as TYPE-SLUG/NAME, e.g. slack-webhook/thb-failures")
    a = p.parse_args(argv)
    from prefect.automations import Automation
    from prefect.blocks.core import Block

    try:
        block = Block.load(a.block)
    except (ValueError, KeyError) as e:
        print(f"no notification block {a.block!r} on this Prefect server ({e}); save one first", file=sys.stderr)
        return 2
    try:
        Automation.read(name=NAME).delete()  # re-running replaces it instead of notifying twice
    except Exception:
        pass
    auto = failure_automation(block._block_document_id).create()
    print(f"automation {NAME!r} ({auto.id}) sends {a.block} when a run of {', '.join(FLOWS)} fails or crashes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
