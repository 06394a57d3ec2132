collect_ignore_glob = [
    "**/.ipynb_checkpoints/*",
    "fixtures/*",  # throwaway notebooks for the browser/exercise/student-copy tests, never run by nbval
]
