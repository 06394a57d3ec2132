collect_ignore_glob = ["**/.ipynb_checkpoints/*"]
