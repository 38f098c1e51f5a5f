/**
 * What the status-bar item says while the server verifies (a check on save, an inline completion, a code
 * action): computed from the server's running work-done progresses. Nothing here imports `vscode`.
 */

/** One `$/progress` the server has begun and not yet ended. */
export interface RunningProgress {
    title: string;
    message: string | undefined;
    percentage: number | undefined;
}

export interface StatusText {
    text: string;
    tooltip: string;
}

/** The item's text and tooltip; `undefined` (hide it) when nothing runs. The newest progress is shown. */
export function statusText(running: readonly RunningProgress[]): StatusText | undefined {
    const newest = running[running.length - 1];
    if (newest === undefined) {
        return undefined;
    }
    const percent = newest.percentage === undefined ? "" : ` ${newest.percentage}%`;
    const others = running.length > 1 ? ` (+${running.length - 1} more)` : "";
    const lines = running.map((entry) => (entry.message ? `${entry.title}: ${entry.message}` : entry.title));
    return { text: `$(sync~spin) lsp-verify: verifying${percent}${others}`, tooltip: lines.join("\n") };
}

/**
 * The title the server gives the background run behind an inline completion: when it ends, the extension
 * asks VS Code for inline suggestions again, since the first request was answered before anything passed.
 */
export const INLINE_RUN_TITLE = "lsp-verify: verifying a completion";

/** Whether an ended progress was an inline completion's run (see INLINE_RUN_TITLE). */
export function isInlineRun(entry: RunningProgress | undefined): boolean {
    return entry !== undefined && entry.title.startsWith(INLINE_RUN_TITLE);
}

/**
 * Applies one `$/progress` value to the running set (keyed by token); returns whether it ended. (The ended
 * entry is still in `running` when `value` is an end: the caller reads it, then calls `running.delete`.)
 */
export function applyProgress(
    running: Map<string | number, RunningProgress>,
    token: string | number,
    value: { kind: string; title?: string; message?: string; percentage?: number },
): boolean {
    if (value.kind === "begin") {
        running.set(token, { title: value.title ?? "lsp-verify", message: value.message, percentage: value.percentage });
        return false;
    }
    if (value.kind === "report") {
        const entry = running.get(token);
        if (entry !== undefined) {
            running.set(token, {
                title: entry.title,
                message: value.message ?? entry.message,
                percentage: value.percentage ?? entry.percentage,
            });
        }
        return false;
    }
    return true;
}
