"""Files, the foundation every stage stands on: what is written where, and how safely.

Place in the data flow: beneath it all. Every stage may import it; it imports
only :mod:`circuitsweep.errors` (and the package's ``__version__``).

- :mod:`.contracts`: every file name, tensor name and table column (the one place they are defined);
- :mod:`.atomic`: atomic writes (a file is whole or absent);
- :mod:`.tables`: Parquet, CSV and Markdown tables with their provenance metadata;
- :mod:`.stats`: safetensors statistics shards;
- :mod:`.cache_check`: every cache checked against what the plan expects before it is used;
- :mod:`.run_folder`: the run folder a config owns, and its lock; :mod:`.names`: names that may become paths;
- :mod:`.report_mode`: what ``snakemake --report`` of a run that did not finish bundles;
- :mod:`.settings_files`: job settings files named by the digest of what they hold;
- :mod:`.corpus`: natural-text corpus files and their digest; :mod:`.progress`: console progress lines;
- :mod:`.readable`: why a path the user names cannot be read as a file (the config's and the command line's).
"""
