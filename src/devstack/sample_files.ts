/**
 * The sample workspace the demo seeds into lakeFS: a few text files with untidy whitespace
 * under `docs/` (what the normalize_text example fixes), two partitions of CSV files under
 * `data/region=east/` and `data/region=west/` (what the csv_totals example sums, one writer
 * per partition side by side) and files that no example touches.
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
  "data/region=east/sales.csv": "day,units,revenue\n1,3,30\n2,5,50\n",
  "data/region=east/returns.csv": "day,units,revenue\n2,1,10\n",
  "data/region=west/sales.csv": "day,units,revenue\n1,7,70\n2,2,20\n3,4,40\n",
});
