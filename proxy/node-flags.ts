/**
 * Whether the operator set a node or V8 flag themselves, on node's command line or in
 * NODE_OPTIONS: puttu's own runtime flag settings (startup-flags.ts, heap.ts) then leave it alone.
 * `flag` is matched against each argument, e.g. /^--max[-_]semi[-_]space[-_]size\b/.
 */
export function operatorSetFlag(flag: RegExp, execArgv: readonly string[] = process.execArgv, nodeOptions: string = process.env.NODE_OPTIONS ?? ''): boolean {
  return [...execArgv, ...nodeOptions.split(/\s+/)].some((arg) => flag.test(arg));
}
