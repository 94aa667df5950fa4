// The Library view (rag/chat/library_view.py sends it and keeps its props current): the documents this
// user may see, with Re-index and Remove (asks for a second click) on the ones they may manage.
// Below the title: the folders the server watches (LRC_WATCH, or added here without logins: canWatch) and their
// state; then the background ingest jobs (rag index --background, run by rag worker) with progress and Cancel.
// Globals from Chainlit: props, callAction.
// Props: {view, title, model, rows, watched, canWatch, jobs, note, error, busy, readOnly}.
import { useState } from "react";
import { Button } from "@/components/ui/button";
import { Progress } from "@/components/ui/progress";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";

const HEAD = "h-8 px-2 text-xs";
const CELL = "px-2 py-1.5 text-xs";
const SMALL = "h-7 px-2 text-xs";

export default function LibraryView() {
  const [confirming, setConfirming] = useState(null); // the row id whose Remove waits for a second click
  const [sending, setSending] = useState(false);
  const [failure, setFailure] = useState("");
  const [folder, setFolder] = useState(""); // the path typed into "Watch a folder"
  const rows = props.rows || [];
  const busy = props.busy;
  const locked = sending || !!busy;

  const act = (name, id, extra = {}) => {
    setConfirming(null);
    setFailure("");
    setSending(true);
    Promise.resolve(callAction({ name, payload: { view: props.view, id, ...extra } }))
      .catch((err) => setFailure(`The server did not answer: ${err?.message || err}`))
      .finally(() => setSending(false));
  };

  return (
    <div id="library-view" className="flex flex-col gap-2 w-full text-sm">
      <div className="flex items-center justify-between gap-2">
        <div>
          <span className="font-semibold">{props.title}</span>
          {props.model ? <span className="text-muted-foreground"> · embedding model {props.model}</span> : null}
        </div>
        <Button size="sm" className={SMALL} variant="outline" disabled={locked} onClick={() => act("library_refresh", "")}>
          Refresh
        </Button>
      </div>
      {(props.watched || []).length ? (
        <div id="library-watched" className="flex flex-col gap-0.5 text-xs">
          {props.watched.map((w) => (
            <div key={w.id} data-watched={w.path} data-state={w.state}>
              <span className="font-medium">Watched folder {w.path}</span>
              <span className={w.state === "missing" || w.state === "error" ? " text-red-600" : " text-muted-foreground"}>
                {" · "}{w.text} · {w.files} document{w.files === 1 ? "" : "s"}
              </span>
              {w.removable ? (
                <Button size="sm" className={SMALL + " ml-2"} variant="ghost" aria-label={`Stop watching ${w.path}`}
                        disabled={locked} onClick={() => act("library_unwatch", w.id)}>
                  Stop watching
                </Button>
              ) : null}
            </div>
          ))}
        </div>
      ) : null}
      {props.canWatch ? (
        <form id="library-watch" className="flex gap-1 items-center"
              onSubmit={(e) => { e.preventDefault(); if (folder.trim()) { act("library_watch", "", { path: folder }); setFolder(""); } }}>
          <input className="h-7 flex-1 rounded border px-2 text-xs bg-transparent" value={folder}
                 placeholder="A folder on the server, e.g. /home/me/notes" aria-label="Folder to watch"
                 onChange={(e) => setFolder(e.target.value)} />
          <Button size="sm" className={SMALL} variant="outline" type="submit" disabled={locked || !folder.trim()}>
            Watch a folder
          </Button>
        </form>
      ) : null}
      {(props.jobs || []).length ? (
        <div id="library-jobs" className="flex flex-col gap-0.5 text-xs">
          {props.jobs.map((j) => (
            <div key={j.id} data-job={j.id} data-state={j.state}>
              <span className="font-medium">Job {j.id}: {j.what}</span>
              <span className={j.state === "failed" ? " text-red-600" : " text-muted-foreground"}>
                {" · "}{j.text}{j.progress ? ` · ${j.progress}` : ""}{j.current ? ` · ${j.current}` : ""}{j.detail ? ` · ${j.detail}` : ""}
              </span>
              {j.cancellable ? (
                <Button size="sm" className={SMALL + " ml-2"} variant="ghost" aria-label={`Cancel job ${j.id}`}
                        disabled={locked} onClick={() => act("library_cancel_job", j.id)}>
                  Cancel
                </Button>
              ) : null}
            </div>
          ))}
        </div>
      ) : null}
      {busy ? (
        <div id="library-progress" className="flex flex-col gap-1" role="status">
          <span>{busy.text}</span>
          <Progress value={busy.percent || 0} className="h-2" />
        </div>
      ) : null}
      {props.note ? <div id="library-note" role="status">{props.note}</div> : null}
      {props.error || failure ? (
        <div id="library-error" role="alert" className="text-red-600">{props.error || failure}</div>
      ) : null}
      {rows.length === 0 ? (
        <div className="text-muted-foreground">No documents yet: drop files into the chat to add some.</div>
      ) : (
        <Table>
          <TableHeader>
            <TableRow>
              <TableHead className={HEAD}>Name</TableHead>
              <TableHead className={HEAD}>Type</TableHead>
              <TableHead className={HEAD + " text-right"}>Pages</TableHead>
              <TableHead className={HEAD + " text-right"}>Passages</TableHead>
              <TableHead className={HEAD + " text-right"}>Size</TableHead>
              <TableHead className={HEAD}>Added</TableHead>
              <TableHead className={HEAD}>Model</TableHead>
              <TableHead className={HEAD}></TableHead>
            </TableRow>
          </TableHeader>
          <TableBody>
            {rows.map((r) => (
              <TableRow key={r.id} data-row={r.name}>
                <TableCell className={CELL + " font-medium break-words"}>
                  {r.name}
                  {r.tag ? <div className="text-xs font-normal text-muted-foreground">{r.tag}</div> : null}
                </TableCell>
                <TableCell className={CELL + " whitespace-nowrap"}>{r.kind}</TableCell>
                <TableCell className={CELL + " text-right whitespace-nowrap"}>{r.pages || "–"}</TableCell>
                <TableCell className={CELL + " text-right whitespace-nowrap"}>{r.passages}</TableCell>
                <TableCell className={CELL + " text-right whitespace-nowrap"}>{r.size}</TableCell>
                <TableCell className={CELL + " whitespace-nowrap"} title={r.addedAt}>{r.added}</TableCell>
                <TableCell className={CELL + " whitespace-nowrap"} title={r.modelId}>{r.model}</TableCell>
                <TableCell className={CELL + " whitespace-nowrap"}>
                  {!r.manageable ? (
                    <span className="text-muted-foreground" title={props.readOnly}>read-only</span>
                  ) : confirming === r.id ? (
                    <div className="flex gap-1">
                      <Button size="sm" className={SMALL} variant="destructive" aria-label={`Confirm removing ${r.name}`}
                              disabled={locked} onClick={() => act("library_remove", r.id)}>
                        Yes, remove
                      </Button>
                      <Button size="sm" className={SMALL} variant="ghost" onClick={() => setConfirming(null)}>Cancel</Button>
                    </div>
                  ) : (
                    <div className="flex gap-1">
                      <Button size="sm" className={SMALL} variant="outline" aria-label={`Re-index ${r.name}`} disabled={locked}
                              onClick={() => act("library_reindex", r.id)}>
                        {busy && busy.id === r.id && busy.action === "reindex" ? "Re-indexing…" : "Re-index"}
                      </Button>
                      <Button size="sm" className={SMALL} variant="outline" aria-label={`Remove ${r.name}`} disabled={locked}
                              onClick={() => setConfirming(r.id)}>
                        Remove
                      </Button>
                    </div>
                  )}
                </TableCell>
              </TableRow>
            ))}
          </TableBody>
        </Table>
      )}
      {rows.some((r) => !r.manageable) ? (
        <div className="text-xs text-muted-foreground">{props.readOnly}</div>
      ) : null}
    </div>
  );
}
