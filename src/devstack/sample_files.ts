/**
 * The sample workspace the demo seeds into lakeFS: a few text files with untidy whitespace
 * under `docs/` (what the normalize_text example fixes) and files outside the prefix that no
 * task touches.
 *
 * @module
 */

/** Path -> content of the demo workspace. */
export const SAMPLE_FILES: Readonly<Record<string, string>> = Object.freeze({
  "README.md": "# Demo workspace\n\nSeeded by `deno task demo`.\n",
  "docs/intro.md":
    "# Introduction   \r\n\r\nperago runs Conductor tasks on lakeFS workspaces.  \r\n",
  "docs/guide.txt": "Step one: poll.\t\nStep two: run.   \nStep three: publish.",
  "docs/notes/changelog.md": "## 0.1.0\n\n- first release  \n\n\n",
  "docs/notes/todo.txt": "nothing left\n",
  "data/points.csv": "x,y\n1,2\n3,4\n",
});
