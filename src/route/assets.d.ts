// Types of the non-code files src/ imports as assets (`with { type: "file" }`): the import's
// value is the file's path (inside the single executable, a path among its embedded files).

declare module "*.wasm" {
  const path: string;
  export default path;
}
