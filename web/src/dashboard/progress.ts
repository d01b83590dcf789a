/** A progress bar fed by a backend's tree progress reports. */

import type { ProgressReport } from "../dasf/client";
import { el } from "./dom";

/** The share of `report` that is done, from its steps and finished children (undefined if unknown). */
export function fractionDone(report: ProgressReport): number | undefined {
  if (report.status !== "running") return 1;
  const children = report.children ?? [];
  const steps = report.steps ?? 0;
  if (!steps) return undefined;
  let done = 0;
  for (const child of children) {
    if (child.status !== "running") done += 1;
    else done += fractionDone(child) ?? 0;
  }
  return Math.min(1, done / steps);
}

function currentStep(report: ProgressReport): string {
  const running = (report.children ?? []).filter((c) => c.status === "running");
  const last = running[running.length - 1];
  return last ? currentStep(last) : report.step_message ?? "";
}

export interface ProgressView {
  element: HTMLElement;
  update(report: ProgressReport): void;
  transfer(received: number, total: number): void;
  done(): void;
}

/** A progress bar with the current step's message. */
export function progressView(): ProgressView {
  const bar = el("progress", { max: "1", "data-testid": "progress" }) as HTMLProgressElement;
  const text = el("span", { class: "progress-text", "data-testid": "progress-text" }, "waiting for the service…");
  const element = el("div", { class: "progress-box" }, bar, " ", text);
  return {
    element,
    update(report) {
      const f = fractionDone(report);
      if (f === undefined) bar.removeAttribute("value");
      else bar.value = f;
      const step = currentStep(report);
      text.textContent = `${f === undefined ? "" : `${Math.round(f * 100)} % `}${step}`;
    },
    transfer(received, total) {
      bar.value = received / total;
      text.textContent = `receiving the result: ${received} of ${total} parts`;
    },
    done() {
      bar.value = 1;
      text.textContent = "done";
    },
  };
}
