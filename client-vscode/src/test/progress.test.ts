import { strict as assert } from "node:assert";
import { describe, it } from "node:test";

import { applyProgress, INLINE_RUN_TITLE, isInlineRun, type RunningProgress, statusText } from "../progress";

describe("the verifying status-bar item", () => {
    it("is hidden while nothing runs", () => {
        assert.equal(statusText([]), undefined);
    });

    it("follows a progress from begin through reports to end", () => {
        const running = new Map<string | number, RunningProgress>();
        assert.equal(applyProgress(running, "t1", { kind: "begin", title: "lsp-verify: verifying a completion for twice", percentage: 0 }), false);
        assert.equal(statusText([...running.values()])?.text, "$(sync~spin) lsp-verify: verifying 0%");
        applyProgress(running, "t1", { kind: "report", message: "verifying 1/4 — tests", percentage: 55 });
        assert.deepEqual(statusText([...running.values()]), {
            text: "$(sync~spin) lsp-verify: verifying 55%",
            tooltip: "lsp-verify: verifying a completion for twice: verifying 1/4 — tests",
        });
        assert.equal(applyProgress(running, "t1", { kind: "end", message: "done" }), true);
        assert.ok(isInlineRun(running.get("t1")), "the ended entry is left for the caller");
        running.delete("t1");
        assert.equal(statusText([...running.values()]), undefined);
    });

    it("counts the other runs and lists them all in the tooltip", () => {
        const running = new Map<string | number, RunningProgress>();
        applyProgress(running, 1, { kind: "begin", title: "Fix `double` (verified)" });
        applyProgress(running, 2, { kind: "begin", title: "lsp-verify: verifying a completion for twice", message: "queued" });
        const shown = statusText([...running.values()]);
        assert.equal(shown?.text, "$(sync~spin) lsp-verify: verifying (+1 more)");
        assert.equal(shown?.tooltip, "Fix `double` (verified)\nlsp-verify: verifying a completion for twice: queued");
    });

    it("ignores a report for a token it never saw begin", () => {
        const running = new Map<string | number, RunningProgress>();
        applyProgress(running, "late", { kind: "report", message: "x" });
        assert.equal(running.size, 0);
    });
});

describe("inline completion runs", () => {
    it("are told apart from other progress by the server's title", () => {
        assert.ok(isInlineRun({ title: `${INLINE_RUN_TITLE} for twice`, message: undefined, percentage: undefined }));
        assert.ok(!isInlineRun({ title: "Fix `double` (verified)", message: undefined, percentage: undefined }));
        assert.ok(!isInlineRun(undefined));
    });
});
