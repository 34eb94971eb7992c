/** Small pieces the views share. */
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import type { CallStatusName } from "./types.js";

export function StatusBadge({ status, expired }: { status: CallStatusName | string; expired?: boolean }) {
  return (
    <span class={`badge status-${status}`} data-status={status}>
      {status}
      {expired ? " · expired" : ""}
    </span>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <div class="empty">{children}</div>;
}

export function ErrorBox({ error }: { error: Error | undefined }) {
  if (!error) return null;
  return (
    <div class="error-box" role="alert">
      {error.message}
    </div>
  );
}

export function Loading() {
  return <div class="loading">Loading…</div>;
}

export function Copy({ text, label = "Copy" }: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      class="ghost small"
      title={`Copy ${text}`}
      onClick={() => {
        void navigator.clipboard?.writeText(text).then(() => {
          setDone(true);
          setTimeout(() => setDone(false), 1200);
        });
      }}
    >
      {done ? "Copied" : label}
    </button>
  );
}

/**
 * A confirmation dialog (a real <dialog>, modal): `open` shows it; confirm runs `onConfirm`
 * and closes it, showing its error if it fails.
 */
export function Confirm(props: {
  open: boolean;
  title: string;
  children: ComponentChildren;
  confirmLabel: string;
  danger?: boolean;
  onConfirm: () => Promise<void>;
  onClose: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | undefined>(undefined);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (props.open && !d.open) {
      setError(undefined);
      d.showModal();
    }
    if (!props.open && d.open) d.close();
  }, [props.open]);
  return (
    <dialog ref={ref} class="confirm" onClose={props.onClose} aria-label={props.title}>
      <h3>{props.title}</h3>
      <div class="confirm-body">{props.children}</div>
      <ErrorBox error={error} />
      <div class="confirm-actions">
        <button type="button" class="ghost" onClick={props.onClose} disabled={busy}>
          Keep it
        </button>
        <button
          type="button"
          class={props.danger ? "danger" : "primary"}
          disabled={busy}
          onClick={async () => {
            setBusy(true);
            try {
              await props.onConfirm();
              props.onClose();
            } catch (e) {
              setError(e instanceof Error ? e : new Error(String(e)));
            } finally {
              setBusy(false);
            }
          }}
        >
          {busy ? "Working…" : props.confirmLabel}
        </button>
      </div>
    </dialog>
  );
}

export function Field({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <div class="field">
      <dt>{label}</dt>
      <dd>{children}</dd>
    </div>
  );
}

export function Slots({ used, max }: { used: number; max: number }) {
  const pct = max > 0 ? Math.min(100, (used / max) * 100) : 0;
  return (
    <span class="slots" title={`${used} of ${max} slots busy`}>
      <span class="slots-bar">
        <span class="slots-fill" style={{ width: `${pct}%` }} />
      </span>
      {used}/{max}
    </span>
  );
}

/** A labelled select: `none` is the first option's text (value ""), `options` the others (value = text). */
export function Choice(props: { label: string; name: string; value: string; none: string; options: readonly string[]; disabled?: boolean; onPick: (value: string) => void }) {
  return (
    <label>
      {props.label}
      <select name={props.name} value={props.value} disabled={props.disabled} onChange={(e) => props.onPick((e.target as HTMLSelectElement).value)}>
        <option value="">{props.none}</option>
        {props.options.map((o) => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </select>
    </label>
  );
}
