"""Proves the Python client generated from /openapi.json is usable: it imports, sends one
real GetChat call with the bearer token, and parses the answer into its models.
Run by scripts/api-check.sh with JUHE_BASE and JUHE_TOKEN set."""
import os
import sys

from juhe_client import AuthenticatedClient
from juhe_client.api.chat_mess import get_chat
from juhe_client.models import ErrorEnvelope, GetChatIn

client = AuthenticatedClient(base_url=os.environ["JUHE_BASE"], token=os.environ["JUHE_TOKEN"])
body = GetChatIn.from_dict({"wechatId": 135389, "fansKey": "wxid_fan0001", "pageSize": 5})
resp = get_chat.sync_detailed(client=client, body=body)
parsed = resp.parsed
if resp.status_code != 200 or parsed is None or isinstance(parsed, ErrorEnvelope):
    sys.exit(f"GetChat through the generated client failed: {resp.status_code} {resp.content!r}")
records = parsed.values
if not records or records[0].ad_chatting_talter != "wxid_fan0001":
    sys.exit(f"GetChat through the generated client returned unexpected records: {resp.content!r}")
print(f"python client: GetChat returned {len(records)} records, first id {records[0].ad_chatting_id}")

# A refused call parses into the error envelope, naming the field.
bad = GetChatIn.from_dict({"wechatId": 135389, "fansKey": "wxid_fan0001", "pageIndex": 0})
resp = get_chat.sync_detailed(client=client, body=bad)
if resp.status_code != 400 or not isinstance(resp.parsed, ErrorEnvelope) or "pageIndex" not in resp.parsed.errdesc:
    sys.exit(f"a refused call did not parse as the error envelope: {resp.status_code} {resp.content!r}")
print("python client: a refused call parses as ErrorEnvelope:", resp.parsed.errdesc)
