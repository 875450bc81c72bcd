// Proves the TypeScript types generated from /openapi.json (openapi-typescript) describe the
// API usefully: this file must type-check with `tsc --strict` against them. Not run.
import type { components, paths } from "./juhe";

type GetChatBody = NonNullable<paths["/v2/ChatMess/GetChat"]["post"]["requestBody"]>["content"]["application/json"];
type GetChatOk = paths["/v2/ChatMess/GetChat"]["post"]["responses"]["200"]["content"]["application/json"];
type Refused = components["schemas"]["ErrorEnvelope"];

const body: GetChatBody = { wechatId: 135389, fansKey: "wxid_fan0001", pageSize: "20" };

export async function getChat(base: string, token: string): Promise<number[]> {
    const r = await fetch(`${base}/v2/ChatMess/GetChat`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", TenantId: "1" },
        body: JSON.stringify(body),
    });
    if (r.status !== 200) {
        const err = (await r.json()) as Refused;
        // `values` is null on errors and `errdesc` is a string: both required.
        const nothing: null = err.values;
        throw new Error(`${err.errmsg}: ${err.errdesc}${nothing ?? ""}`);
    }
    const ok = (await r.json()) as GetChatOk;
    const next: number | null | undefined = ok.page.nextMinChattingId;
    const ids = ok.values.map((c) => c.ad_chatting_id);
    const photo: string = ok.values[0]?.ad_friend_photo ?? "";
    const staff: string | null = ok.values[0]?.ad_staff_code ?? null;
    return typeof next === "number" ? [...ids, next, photo.length, staff === null ? 0 : 1] : ids;
}
