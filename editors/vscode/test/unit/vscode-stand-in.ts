// A stand-in for the `vscode` module (which exists only inside the editor), with the
// few classes the extension's view code constructs. Loaded with `mocha --require`.

import Module = require("module");

class EventEmitter<T> {
  private listeners: ((e: T) => void)[] = [];
  readonly event = (l: (e: T) => void) => {
    this.listeners.push(l);
    return { dispose: () => undefined };
  };
  fire(e: T): void {
    this.listeners.forEach((l) => l(e));
  }
}

class TreeItem {
  id?: string;
  description?: string;
  tooltip?: string;
  contextValue?: string;
  iconPath?: unknown;
  constructor(
    readonly label: string,
    readonly collapsibleState: number,
  ) {}
}

class ThemeIcon {
  constructor(
    readonly id: string,
    readonly color?: ThemeColor,
  ) {}
}

class ThemeColor {
  constructor(readonly id: string) {}
}

export const standIn = {
  EventEmitter,
  TreeItem,
  ThemeIcon,
  ThemeColor,
  TreeItemCollapsibleState: { None: 0, Collapsed: 1, Expanded: 2 },
};

const resolve = (Module as unknown as { _resolveFilename: (req: string, ...rest: unknown[]) => string })._resolveFilename;
(Module as unknown as { _resolveFilename: (req: string, ...rest: unknown[]) => string })._resolveFilename = function (req: string, ...rest: unknown[]) {
  if (req === "vscode") {
    return require.resolve("./vscode-stand-in");
  }
  return resolve.call(this, req, ...rest);
};
module.exports = Object.assign(module.exports, standIn);
