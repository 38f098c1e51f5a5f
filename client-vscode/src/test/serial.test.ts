import { strict as assert } from "node:assert";
import { describe, it } from "node:test";

import { CoalescingRunner } from "../serial";

/** A task whose runs finish only when the test says so. */
function controlledTask() {
    const finishers: ((error?: Error) => void)[] = [];
    let started = 0;
    const task = () =>
        new Promise<void>((resolve, reject) => {
            started += 1;
            finishers.push((error) => (error ? reject(error) : resolve()));
        });
    return {
        task,
        started: () => started,
        finish: async (error?: Error) => {
            const finisher = finishers.shift();
            assert.ok(finisher, "no run is in progress");
            finisher(error);
            // Let the runner's promise callbacks (and any queued run's start) happen.
            await new Promise((resolve) => setImmediate(resolve));
        },
    };
}

describe("CoalescingRunner", () => {
    it("runs at once when idle", async () => {
        const t = controlledTask();
        const runner = new CoalescingRunner(t.task);
        const done = runner.run();
        assert.equal(t.started(), 1);
        await t.finish();
        await done;
    });

    it("folds requests made during a run into exactly one further run", async () => {
        const t = controlledTask();
        const runner = new CoalescingRunner(t.task);
        const first = runner.run();
        const second = runner.run();
        const third = runner.run();
        assert.equal(second, third, "requests while one is queued share the queued run");
        assert.equal(t.started(), 1, "never two runs at the same time");
        await t.finish();
        assert.equal(t.started(), 2);
        await first;
        let settled = false;
        void second.then(() => (settled = true));
        await new Promise((resolve) => setImmediate(resolve));
        assert.equal(settled, false, "the queued request waits for its own run");
        await t.finish();
        await second;
        assert.equal(t.started(), 2);
    });

    it("still runs the queued request after a failed run, and reports each failure to its callers", async () => {
        const t = controlledTask();
        const runner = new CoalescingRunner(t.task);
        const first = runner.run();
        const second = runner.run();
        await t.finish(new Error("boom"));
        await assert.rejects(first, /boom/);
        assert.equal(t.started(), 2);
        await t.finish();
        await second;
    });

    it("idle() waits for the running and the queued run", async () => {
        const t = controlledTask();
        const runner = new CoalescingRunner(t.task);
        void runner.run();
        void runner.run();
        let idle = false;
        const waiting = runner.idle().then(() => (idle = true));
        await t.finish();
        assert.equal(idle, false);
        await t.finish();
        await waiting;
        assert.equal(idle, true);
    });
});
