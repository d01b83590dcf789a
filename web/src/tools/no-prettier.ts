// Stands in for prettier in the bundled converter: it runs with format: false.
export function format(code: string): Promise<string> {
  return Promise.resolve(code);
}
